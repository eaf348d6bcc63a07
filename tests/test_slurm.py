"""launcher=slurm on a real SLURM cluster: a single-node one on this machine (.ci/slurm start: Debian's slurm-wlm and
munge, as CI starts it). A sweep's jobs go through sbatch and srun; a pre-emption comes as SLURM delivers it,
`scancel --signal=USR1 JOB`, which signals every process of the job's step (the DataLoader workers too), at several
moments of a run: while it loads, trains, validates and tests. Each ends in a requeued job that finishes in the same
directory from its checkpoint, with every epoch in its record and the test on the best checkpoint."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import read_metrics, start_alexlab

TESTS = Path(__file__).resolve().parent


def cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30, check=False).returncode == 0


# CI starts the cluster and sets ALEXLAB_REQUIRE_SLURM=1 (.ci/run): there these tests run, never skip.
pytestmark = pytest.mark.skipif(
    not cluster_up() and not os.environ.get("ALEXLAB_REQUIRE_SLURM"),
    reason="no SLURM cluster on this machine: `.ci/slurm start` (as root) starts one",
)
SLURM = ("launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=null")
SLURM += ("hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1")
RUN = ("experiment=smoke", "logger=csv", "seed=0", "trainer.max_epochs=3", "trainer.limit_train_batches=6")
RUN += ("trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "data.num_workers=1")


@pytest.fixture(autouse=True)
def _outside_any_slurm_job(monkeypatch):
    """The sweep is submitted from outside a job, as a user would (CI may itself run inside one)."""
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)


def sweep(tmp_path: Path, *args: str, env: dict | None = None) -> str:
    """`alexlab -m SLURM RUN ARGS` into tmp_path/sweep; while it waits for its jobs, a requeued job is let start
    at once (SLURM holds a requeued job for about two minutes: scontrol update StartTime=now). Its output."""
    process = start_alexlab("-m", *SLURM, *RUN, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, env=env)
    deadline = time.time() + 540
    while process.poll() is None and time.time() < deadline:
        held = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True).stdout
        for job in (line.split()[0] for line in held.splitlines() if line.endswith("BeginTime")):
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        time.sleep(1)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    return output


def test_a_sweeps_jobs_run_on_slurm(tmp_path):
    sweep(tmp_path, "dropout=on,off")
    for job in ("0", "1"):
        ended = read_metrics(tmp_path / "sweep" / job)
        assert ended["status"] == "finished" and [row["epoch"] for row in ended["history"]] == [0, 1, 2]
    submitted = list((tmp_path / "sweep" / ".submitit").rglob("*_submitted.pkl"))
    assert len(submitted) == 2  # two SLURM jobs (an array of two), submitted by sbatch
    (script,) = (tmp_path / "sweep" / ".submitit").rglob("*_submission.sh")  # what launcher=slurm asked SLURM for
    for line in ("--partition=debug", "--nodes=1", "--ntasks-per-node=1", "--signal=USR1@120", "--array=0-1%2"):
        assert f"#SBATCH {line}\n" in script.read_text()  # (array_parallelism 32, capped at the 2 jobs)
    assert (tmp_path / "sweep" / "report.md").exists()


# In the default run: loading and validating, the moments that need their own handling (before Lightning's loop,
# and a validation cut short); training and testing are slow here, and in the default run as a SIGTERM at those
# moments (tests/test_resume.py, tests/test_record.py), which is what the pre-emption becomes inside the job.
@pytest.mark.parametrize(
    ("hook", "moment"),
    [
        ("setup", "loading"),
        pytest.param("on_train_epoch_end", "training", marks=pytest.mark.slow),
        ("on_validation_start", "validating"),
        pytest.param("on_test_start", "testing", marks=pytest.mark.slow),
    ],
)
def test_a_preempted_job_is_requeued_and_finishes_from_its_checkpoint(tmp_path, hook, moment):
    callback = ("+callbacks.preempt._target_=signal_callbacks.ScancelAt", f"+callbacks.preempt.hook={hook}")
    callback += (f"+callbacks.preempt.once={tmp_path / 'sent'}",)
    output = sweep(tmp_path, *callback, env={"PYTHONPATH": str(TESTS)})
    assert (tmp_path / "sent").exists(), f"never pre-empted while {moment}"
    job_dir = tmp_path / "sweep" / "0"
    log = (job_dir / "alexlab.log").read_text()
    assert "SLURM pre-empts this job" in log and "requeued SLURM job" in log, log
    assert "killed by signal" not in log + output
    ended = read_metrics(job_dir)
    assert ended["status"] == "finished", ended.get("error")
    assert [row["epoch"] for row in ended["history"]] == [0, 1, 2]  # every epoch, none twice
    assert all("val/top1_err" in row and "train/loss" in row for row in ended["history"])  # each one whole
    assert "test/top1_err" in ended["final"]
    best = ended["checkpoints"]["best"]
    assert best and Path(best).is_file() and Path(best).parent == job_dir / "checkpoints"
    rows = (job_dir / "csv" / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]  # the epochs before the requeue are kept
