import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `python3 -m pytest` puts the repository root first on sys.path, which imports alexlab from the source tree without
# the packages pyproject.toml maps from conf/ and sweeps/ (alexlab.conf, alexlab.sweeps). Test the installed package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]

from helpers.commands import FEW_BATCHES, run_alexlab  # noqa: E402  (after the path is set: alexlab from the installed package)

# The modules that take a minute or more, longest first: pytest-xdist hands each test process the next module in
# this order (`--no-loadscope-reorder` in pyproject.toml; by default it hands out the modules with the most tests
# first, which left the SLURM and learning modules, few tests of minutes each, to the end, one process idle while the
# other ran them). The SLURM module waits on its cluster's jobs and requeues: started first, the other process's
# tests fill those waits. The rest follow in pytest's order, each under a minute (docs/measurements.md has the
# modules' times).
LONGEST_FIRST = (
    "test_slurm.py", "test_sweeps.py", "test_optuna_sweeper.py", "test_learning.py", "test_cli.py",
    "test_fair_arms.py", "test_fuzz.py", "test_record.py", "test_launchers.py", "test_resume.py", "test_report.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's tests keep their order


@pytest.fixture
def alexlab(tmp_path):
    """Run `alexlab ARGS` with outputs under tmp_path; fails the test with the output if it exits non-zero."""

    def call(*args: str, expect_ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = run_alexlab(*args, f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path, **kwargs)
        if expect_ok:
            assert result.returncode == 0, f"alexlab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    return call


def trained_once(tmp_path_factory, name: str, sweep: str, *args: str) -> Path:
    """The sweep `alexlab -m ARGS` (into a folder named `sweep`), trained once for the whole test run in a folder
    that every test process of the run shares (pytest-xdist's workers each have a session of their own, so a session
    fixture alone trains it once in each): the first process to need it trains it under a file lock, the others
    wait and read it. Readers copy it before writing into it."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared  # the workers' common folder
    root, sweep_dir = shared / name, shared / name / sweep
    with FileLock(shared / f"{name}.lock"):
        if not (root / "trained").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed try left
            root.mkdir()
            result = run_alexlab(
                "-m", *args, f"hydra.sweep.dir={sweep_dir}", f"paths.output_root={root / 'outputs'}", cwd=root
            )
            assert result.returncode == 0, f"the {name} sweep failed:\n{result.stdout}\n{result.stderr}"
            (root / "trained").touch()
    return sweep_dir


@pytest.fixture(scope="session")
def smoke_grid(tmp_path_factory) -> Path:
    """One 2x2 smoke grid (dropout=on,off x depth=5,3, W&B offline + CSV), shared by the sweep and W&B tests: the
    smoke's 2 epochs, of FEW_BATCHES (what they read is the runs' files, not how much the runs learnt)."""
    return trained_once(
        tmp_path_factory, "smoke_grid", "grid", "experiment=smoke", *FEW_BATCHES, "dropout=on,off", "depth=5,3"
    )


@pytest.fixture(scope="session")
def seed_grid(tmp_path_factory) -> Path:
    """One smoke sweep of dropout=on,off x seed=0,1 (W&B offline + CSV), 2 epochs of FEW_BATCHES, for the report's
    and the dashboard's tests."""
    return trained_once(
        tmp_path_factory, "seed_grid", "sweep", "experiment=smoke", *FEW_BATCHES, "dropout=on,off", "seed=0,1"
    )
