"""Multiruns on Hydra's parallel and cluster launchers (launcher=joblib|submitit_local|slurm), through the real
command: jobs in processes of their own, and SLURM's requeue and resume on a fake SLURM that really runs the job."""

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import read_metrics, start_alexlab
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from alexlab.train import fit_checkpoint

TINY = (
    "experiment=smoke",
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "test_after_fit=false",
)
# Every log line of the job starts with its process id and time, and Hydra's own lines (the sweep's process) with
# the process id, so the log shows which process ran what, and when.
PIDS = (
    "hydra.job_logging.formatters.simple.format='%(process)d %(created)f %(message)s'",
    "hydra.hydra_logging.formatters.simple.format='%(process)d %(message)s'",
)


@pytest.fixture(autouse=True)
def _no_slurm_around_the_tests(monkeypatch):
    """The tests' own SLURM only: none of a real one around the test run (CI inside a SLURM job)."""
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)


def job_processes(sweep_dir) -> dict[str, tuple[set[int], float, float]]:
    """Each job directory -> the process ids in its alexlab.log, and the time of its first and last line."""
    jobs = {}
    for log in sorted(sweep_dir.glob("*/alexlab.log")):
        lines = [line.split(" ", 2) for line in log.read_text().splitlines() if re.match(r"\d+ \d+\.\d+ ", line)]
        jobs[log.parent.name] = ({int(pid) for pid, _, _ in lines}, float(lines[0][1]), float(lines[-1][1]))
    return jobs


def check_two_jobs_in_processes_of_their_own(result, sweep_dir) -> dict[str, tuple[set[int], float, float]]:
    sweep_pid = int(re.search(r"^(\d+) sweep .*: 2 runs \(2 finished\)", result.stdout, re.M).group(1))
    assert sorted(p.name for p in sweep_dir.iterdir() if (p / "metrics.json").exists()) == ["0", "1"]
    assert [read_metrics(sweep_dir / job)["status"] for job in ("0", "1")] == ["finished", "finished"]
    assert json.loads((sweep_dir / "sweep.json").read_text())["by_status"] == {"finished": 2}
    assert (sweep_dir / "report.md").exists()
    jobs = job_processes(sweep_dir)
    (pid0,), (pid1,) = jobs["0"][0], jobs["1"][0]  # one process ran each job...
    assert len({sweep_pid, pid0, pid1}) == 3  # ... neither the sweep's process nor the other job's
    return jobs


def test_submitit_local_runs_each_job_in_a_process_of_its_own(alexlab, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = alexlab("-m", "launcher=submitit_local", "seed=0,1", *TINY, *PIDS, f"hydra.sweep.dir={sweep_dir}")
    check_two_jobs_in_processes_of_their_own(result, sweep_dir)
    for job in ("0", "1"):  # submitit's job id, its pickled job and result, and the job's output in its log
        job_id = re.search(r"^\s+id: '(\d+)'", (sweep_dir / job / ".hydra" / "hydra.yaml").read_text(), re.M)[1]
        submitit = sweep_dir / ".submitit" / job_id
        assert (submitit / f"{job_id}_submitted.pkl").exists() and (submitit / f"{job_id}_0_result.pkl").exists()
        assert f"(run dir: {sweep_dir / job})" in (submitit / f"{job_id}_0_log.out").read_text()


def test_joblib_runs_two_jobs_at_once_in_worker_processes(alexlab, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # whole smoke runs (about 10 s each), not TINY's two batches: a worker's start (its imports) can take seconds
    # longer than the other's on a loaded machine, and jobs of a second would then not overlap although both ran
    # at once
    whole_smoke = ("experiment=smoke", "logger=none", "test_after_fit=false")
    result = alexlab("-m", "launcher=joblib", "seed=0,1", *whole_smoke, *PIDS, f"hydra.sweep.dir={sweep_dir}")
    assert "Joblib.Parallel(n_jobs=2," in result.stdout
    jobs = check_two_jobs_in_processes_of_their_own(result, sweep_dir)
    (_, start0, end0), (_, start1, end1) = jobs["0"], jobs["1"]
    assert start0 < end1 and start1 < end0  # they overlapped in time: from the Trainer's start to the result


def test_slurm_asks_for_lightnings_task_layout_and_the_requeue_signal(alexlab):
    with initialize_config_module("alexlab.conf", version_base="1.3"):
        cfg = compose(
            "config",
            ["launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (4, 2, 4)
    assert launcher.additional_parameters.signal == "USR1@120" and launcher.signal_delay_s == 120
    # trainer.devices=auto cannot be a task count: refused in one line, before anything is submitted
    result = alexlab("-m", "launcher=slurm", "trainer.devices=auto", expect_ok=False)
    assert result.returncode == 2 and "'auto'" in result.stderr.strip().splitlines()[-1]


# A fake SLURM on one machine, for a sweep of one job (no job array): sbatch starts the batch script in the background
# with the environment SLURM gives it, srun runs one task (rank 0) with its output where submitit asked, scontrol
# requeue kills the task (SIGTERM, then SIGKILL, as SLURM does) and starts the batch script again, and sacct knows
# nothing (submitit then waits for the job's result file).
FAKE_SLURM = {
    "sbatch": r"""
cp "$1" "$FAKE_SLURM/job.sh"
flag() { sed -n "s/^#SBATCH --$1=//p" "$FAKE_SLURM/job.sh"; }
[ -z "$(flag array)" ] || { echo "fake sbatch: one job, not an array" >&2; exit 1; }
echo "export SLURM_JOB_ID=4242 SLURM_JOB_NAME=$(flag job-name) SLURM_NNODES=$(flag nodes) \
SLURM_NTASKS_PER_NODE=$(flag ntasks-per-node) SLURM_NTASKS=$(( $(flag nodes) * $(flag ntasks-per-node) )) \
SLURM_JOB_NUM_NODES=$(flag nodes) SLURM_JOB_NODELIST=localhost SLURM_NODELIST=localhost
exec bash $FAKE_SLURM/job.sh" > "$FAKE_SLURM/start.sh"
setsid bash "$FAKE_SLURM/start.sh" >> "$FAKE_SLURM/batch.log" 2>&1 < /dev/null &
echo "Submitted batch job 4242"
""",
    "srun": r"""
while [[ "$1" == --* ]]; do case "$1" in --output|--error) declare "${1#--}=$2"; shift 2;; *) shift;; esac; done
output=${output//%j/$SLURM_JOB_ID} error=${error//%j/$SLURM_JOB_ID}
mkdir -p "$(dirname "$output")"
echo $$ > "$FAKE_SLURM/task.pid"
SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0 exec "$@" >> "${output//%t/0}" 2>> "${error//%t/0}"
""",
    "scontrol": r"""
echo "$@" >> "$FAKE_SLURM/scontrol.calls"
[ "$1" = requeue ] || exit 0
setsid bash -c 'pid=$(cat "$FAKE_SLURM/task.pid"); kill -TERM $pid
  for i in $(seq 150); do kill -0 $pid 2> /dev/null || break; sleep 0.2; done; kill -KILL $pid 2> /dev/null
  SLURM_RESTART_COUNT=1 exec bash "$FAKE_SLURM/start.sh"' >> "$FAKE_SLURM/batch.log" 2>&1 < /dev/null &
""",
    "sacct": 'echo "JobID|State|NodeList"\n',
}


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"exited ({process.returncode}) before {what}:\n{process.communicate()[0]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop_task(pid_file: Path) -> None:
    """After a failure: the fake SLURM's task if it still runs (its command line checked, not only its pid)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def test_slurm_job_requeued_on_sigusr1_resumes_from_lightnings_checkpoint(tmp_path):
    """The whole path of a pre-empted job: launcher=slurm submits (a fake sbatch), srun starts the task, SIGUSR1
    (what SLURM sends signal_delay_s before the time limit) makes Lightning save hpc_ckpt_1.ckpt and call
    `scontrol requeue`, the task is killed and run again in the same job directory, and resumes there."""
    state, bin_dir, sweep_dir = tmp_path / "slurm", tmp_path / "bin", tmp_path / "sweep"
    state.mkdir(), bin_dir.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(state)}
    epochs, batches = 3, 10
    args = ["-m", "launcher=slurm", "hydra.launcher.partition=fake", "seed=0", "experiment=smoke", "logger=none"]
    args += [f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=1"]
    args += ["test_after_fit=false", f"hydra.sweep.dir={sweep_dir}", f"paths.output_root={tmp_path / 'outputs'}"]
    # No epoch-end checkpoints here: Lightning's SIGUSR1 handler, run while a checkpoint is being written, writes
    # its own inside the first one's fsspec transaction and the first save fails (AttributeError: 'NoneType' object
    # has no attribute '_intrans'). Sent right after an epoch's line, the signal would often land in that save.
    args += ["~callbacks.checkpoint", "+trainer.enable_checkpointing=false"]
    sweep = start_alexlab(*args, cwd=tmp_path, env=env)
    job_log, pid_file = sweep_dir / "0" / "alexlab.log", state / "task.pid"
    try:
        wait_for(lambda: job_log.exists() and "epoch 0 " in job_log.read_text(), "the job's first epoch", sweep)
        first_pid = int(pid_file.read_text())
        os.kill(first_pid, signal.SIGUSR1)
        wait_for(lambda: (state / "scontrol.calls").exists(), "scontrol requeue", sweep)
        output, _ = sweep.communicate(timeout=240)
    except BaseException:
        sweep.kill()
        stop_task(pid_file)
        raise
    assert sweep.returncode == 0, output

    script = (state / "job.sh").read_text()  # what launcher=slurm asked SLURM for
    for line in ("--partition=fake", "--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--signal=USR1@120"):
        assert f"#SBATCH {line}\n" in script
    assert re.search(r"^srun .* -m submitit.core._submit ", script, re.M)
    assert (state / "scontrol.calls").read_text() == "requeue 4242\n"
    assert int(pid_file.read_text()) != first_pid  # the job ran twice

    job_dir = sweep_dir / "0"
    # filed into checkpoints/ once the requeued run chose where to start (alexlab.record.file_away_hpc_checkpoints)
    saved = torch.load(job_dir / "checkpoints" / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] >= batches  # saved after the first epoch
    log = job_log.read_text()
    assert "Handling auto-requeue signal: 10" in log and "Requeued SLURM job: 4242" in log
    # from the hpc checkpoint, or from last.ckpt when the kill that followed the requeue was a SIGTERM (saved later)
    restored = [f"Restoring states from the checkpoint path at {job_dir / name}" in log
                for name in ("checkpoints/hpc_ckpt_1.ckpt", "checkpoints/last.ckpt")]  # fmt: skip
    assert any(restored)
    assert log.count("epoch 0 ") == 1  # the second run went on from the checkpoint, not from the start
    assert [f"epoch {e} " in log for e in range(epochs)] == [True] * epochs
    metrics = read_metrics(job_dir)
    assert metrics["status"] == "finished" and metrics["history"][-1]["step"] == epochs * batches
    assert json.loads((sweep_dir / "sweep.json").read_text())["by_status"] == {"finished": 1}


def test_a_run_dir_with_lightnings_hpc_checkpoint_resumes_from_it_whatever_ckpt_path_says(tmp_path):
    cfg = OmegaConf.create({"ckpt_path": "/some/earlier/last.ckpt"})
    assert fit_checkpoint(cfg, tmp_path) == "/some/earlier/last.ckpt"  # the first stint starts from ckpt_path
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    assert fit_checkpoint(cfg, tmp_path) == "/some/earlier/last.ckpt"  # not a whole checkpoint: not resumed from
    torch.save({"state_dict": {}}, tmp_path / "hpc_ckpt_1.ckpt")
    assert fit_checkpoint(cfg, tmp_path) == str(tmp_path / "hpc_ckpt_1.ckpt")  # a requeued one from where it stopped
