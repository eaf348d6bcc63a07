"""Multiruns on Hydra's parallel and cluster launchers (launcher=joblib|submitit_local|slurm), through the real
command: jobs in processes of their own. A real SLURM cluster runs launcher=slurm in tests/test_slurm.py."""

import json
import os
import re

import pytest
import torch
from helpers.commands import read_metrics
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from alexlab.checkpoints import fit_checkpoint

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
        assert f"run dir: {sweep_dir / job}" in (submitit / f"{job_id}_0_log.out").read_text()


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


def test_a_run_dir_with_lightnings_hpc_checkpoint_resumes_from_it_whatever_ckpt_path_says(tmp_path):
    cfg = OmegaConf.create({"ckpt_path": "/some/earlier/last.ckpt"})
    assert fit_checkpoint(cfg, tmp_path) == "/some/earlier/last.ckpt"  # the first stint starts from ckpt_path
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    assert fit_checkpoint(cfg, tmp_path) == "/some/earlier/last.ckpt"  # not a whole checkpoint: not resumed from
    torch.save({"state_dict": {}}, tmp_path / "hpc_ckpt_1.ckpt")
    assert fit_checkpoint(cfg, tmp_path) == str(tmp_path / "hpc_ckpt_1.ckpt")  # a requeued one from where it stopped
