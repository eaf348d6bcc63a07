import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `python3 -m pytest` puts the repository root first on sys.path, which imports alexlab from the source tree without
# the packages pyproject.toml maps from conf/ and sweeps/ (alexlab.conf, alexlab.sweeps). Test the installed package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]

from helpers.commands import run_alexlab  # noqa: E402  (after the path is set: alexlab from the installed package)


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


@pytest.fixture(scope="session")
def seed_grid(tmp_path_factory) -> Path:
    """One smoke sweep of dropout=on,off x seed=0,1 (W&B offline + CSV), for the report's and the dashboard's tests;
    each copies it before writing into it."""
    root = tmp_path_factory.mktemp("seed_grid")
    sweep_dir = root / "sweep"
    result = run_alexlab(
        "-m", "experiment=smoke", "dropout=on,off", "seed=0,1", f"hydra.sweep.dir={sweep_dir}",
        f"paths.output_root={root / 'outputs'}", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sweep_dir


SHARED_GRIDS = ("smoke_grid", "seed_grid")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """The tests of a shared grid run in one test process (pytest-xdist's loadgroup), which trains the grid once,
    instead of once in each process."""
    for item in items:
        for grid in SHARED_GRIDS:
            if grid in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(grid))
