import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
ROOT = Path(__file__).resolve().parents[1]

# `python3 -m pytest` puts the repository root first on sys.path, which imports alexlab from the source tree without
# the packages pyproject.toml maps from conf/ and sweeps/ (alexlab.conf, alexlab.sweeps). Test the installed package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]


def alexlab_process(env: dict | None) -> tuple[list[str], dict]:
    """The installed `alexlab` command and its environment: W&B offline, and without HYDRA_FULL_ERROR (which would
    turn the one-line errors under test into tracebacks)."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    exe = Path(sys.executable).with_name("alexlab")
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "alexlab"]), full_env


def run_alexlab(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The real entry point, as a user types it, in a fresh process."""
    command, full_env = alexlab_process(env)
    return subprocess.run(
        [*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_alexlab(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`alexlab ARGS` started in the background (to be signalled), stdout and stderr together as text."""
    command, full_env = alexlab_process(env)
    return subprocess.Popen(
        [*command, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("metrics.json"))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def alexlab(tmp_path):
    """Run `alexlab ARGS` with outputs under tmp_path; fails the test with the output if it exits non-zero."""

    def call(*args: str, expect_ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = run_alexlab(*args, f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path, **kwargs)
        if expect_ok:
            assert result.returncode == 0, f"alexlab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    return call


@pytest.fixture(scope="session")
def smoke_grid(tmp_path_factory) -> Path:
    """One 2x2 smoke grid (dropout=on,off x depth=5,3, W&B offline + CSV), shared by the sweep and W&B tests."""
    root = tmp_path_factory.mktemp("smoke_grid")
    sweep_dir = root / "grid"
    result = run_alexlab(
        "-m",
        "experiment=smoke",
        "dropout=on,off",
        "depth=5,3",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.output_root={root / 'outputs'}",
        cwd=root,
    )
    assert result.returncode == 0, f"the smoke grid failed:\n{result.stdout}\n{result.stderr}"
    return sweep_dir
