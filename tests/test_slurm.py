"""launcher=slurm on a real SLURM cluster: a single-node one on this machine (.ci/slurm start: Debian's slurm-wlm and
munge, as CI starts it). A sweep's jobs go through sbatch and srun; a pre-emption comes as SLURM delivers it,
`scancel --signal=USR1 JOB`, which signals every process of the job's step (the DataLoader workers too), at several
moments of a run: while it loads, trains, validates and tests. Each ends in a requeued job that finishes in the same
directory from its checkpoint, with every epoch in its record and the test on the best checkpoint."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.commands import read_metrics, run_alexlab

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
# this cluster's jobs write to this machine's own disk: their result files are there when they end
SLURM += ("hydra.launcher.poll_s=1", "hydra.launcher.result_grace_s=1")
RUN = ("experiment=smoke", "logger=csv", "seed=0", "trainer.max_epochs=3", "trainer.limit_train_batches=6")
RUN += ("trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "data.num_workers=1")


@pytest.fixture(autouse=True)
def _outside_any_slurm_job(monkeypatch):
    """The sweep is submitted from outside a job, as a user would (CI may itself run inside one)."""
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)


def slurm_state() -> str:
    """What SLURM says of every job it knows, for a test's failure message: squeue and scontrol show job."""
    lines = []
    for command in (["squeue", "-a", "-o", "%i %T %r %M"], ["scontrol", "show", "job"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        lines += [f"$ {' '.join(command)}", (done.stdout + done.stderr).strip()]
    return "\n".join(lines)


def sweep(tmp_path: Path, *args: str, env: dict | None = None, expect: int = 0, limit_s: float = 420) -> str:
    """`alexlab -m SLURM RUN ARGS` into tmp_path/sweep, waited for at most limit_s seconds; its output. A requeued job
    starts when SLURM lets it (cred_expire + 1 s after its requeue: .ci/slurm), never earlier, so that slurmd never
    kills it for the revoked credential of its last stint. A sweep that outlives the limit fails the test with
    SLURM's own account of its jobs. The sweep's own process is forked (run_alexlab); its jobs are SLURM's."""
    try:
        done = run_alexlab(
            "-m", *SLURM, *RUN, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, env=env, timeout=limit_s
        )
    except subprocess.TimeoutExpired as expired:
        output = f"{expired.output}{expired.stderr}"
        pytest.fail(f"the sweep did not end within {limit_s:g} s; its output:\n{output}\n{slurm_state()}")
    output = done.stdout + done.stderr
    assert done.returncode == expect, f"{output}\n{slurm_state()}"
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


def test_a_job_an_administrator_cancels_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    """A plain scancel of the first job to finish an epoch: SLURM ends it for good. The sweep sees it ended (scontrol),
    records it failed with SLURM's state, and goes on: the other job finishes and the report is written."""
    callback = ("+callbacks.cancel._target_=signal_callbacks.CancelAt", "+callbacks.cancel.hook=on_train_epoch_end")
    callback += (f"+callbacks.cancel.once={tmp_path / 'sent'}",)
    output = sweep(tmp_path, "dropout=on,off", *callback, env={"PYTHONPATH": str(TESTS)})
    records = sorted((read_metrics(tmp_path / "sweep" / job) for job in ("0", "1")), key=lambda r: r["status"])
    cancelled, other = records  # "failed" sorts before "finished"
    assert cancelled["status"] == "failed" and "CANCELLED" in cancelled["error"], cancelled["error"]
    assert "\n" not in cancelled["error"] and cancelled["error"].startswith("SLURM job ")
    assert len(cancelled["history"]) == 1, "its own record's epochs are kept"  # SLURM killed it in its first
    assert other["status"] == "finished"  # the once-file was there by its first epoch's end
    assert (tmp_path / "sweep" / "report.md").exists() and "run failed: SLURM job" in output


def test_jobs_slurm_holds_are_cancelled_after_held_timeout_s_and_the_sweep_ends(tmp_path):
    """Jobs submitted held (sbatch --hold: they would wait for `scontrol release` forever): after
    hydra.launcher.held_timeout_s the launcher cancels them and records them failed with SLURM's reason; no run
    finished, so the command ends in one line and exit 1, well before any test deadline."""
    held = ("+hydra.launcher.additional_parameters.hold=true", "hydra.launcher.held_timeout_s=5")
    output = sweep(tmp_path, "dropout=on,off", *held, expect=1, limit_s=120)
    ids = []
    for job in ("0", "1"):
        ended = read_metrics(tmp_path / "sweep" / job)
        assert ended["status"] == "failed" and "JobHeld" in ended["error"] and "cancelled" in ended["error"]
        ids += re.findall(r"SLURM job (\d+_\d+)", ended["error"])
    assert "alexlab: error: no run of the sweep finished (2 runs); run 0: SLURM job" in output
    assert len(set(ids)) == 2, ids
    states = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True).stdout
    # none of its jobs left in the queue (another test's requeued job may be waiting there meanwhile)
    assert not [line for line in states.splitlines() if line.split()[0] in ids and "PENDING" in line], states
