"""Interruptions and resume through the real command: SIGTERM mid-epoch and kill -9 between checkpoints, then
`resume=true`, end with the metrics of an unbroken run (CPU, deterministic=true); an interrupted sweep picks up its
unfinished job from its checkpoint; checkpoints and metrics.json are never left half-written."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import read_metrics, run_alexlab, run_dirs, start_alexlab

from alexlab import record
from alexlab.record import Record, Status
from alexlab.train import EXIT_INTERRUPTED

RUN = (
    "experiment=smoke",
    "logger=none",
    "deterministic=true",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=30",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.image_size=48",  # ~2 s per epoch on 2 cores: time to be interrupted mid-run
)


def interrupt_after_first_checkpoint(process: subprocess.Popen, root: Path, sig: int) -> str:
    """Wait until an epoch-end last.ckpt exists somewhere under root, then send `sig`; the process's output."""
    deadline = time.time() + 300
    while not list(root.rglob("last.ckpt")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    output = process.communicate(timeout=300)[0]
    return output


def comparable(metrics: dict) -> list[dict]:
    """Every epoch's metrics but the timing, and the test metrics."""
    epochs = [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in metrics["history"]]
    return [*epochs, {k: v for k, v in metrics["final"].items() if k.startswith("test/")}]


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("unbroken")
    result = run_alexlab("train", *RUN, f"paths.output_root={root / 'outputs'}", cwd=root)
    assert result.returncode == 0, result.stderr
    (run_dir,) = run_dirs(root / "outputs")
    return read_metrics(run_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_interrupted_then_resumed_run_ends_as_an_unbroken_one(unbroken, tmp_path, sig):
    args = [*RUN, f"paths.output_root={tmp_path / 'outputs'}"]
    process = start_alexlab("train", *args, cwd=tmp_path)
    output = interrupt_after_first_checkpoint(process, tmp_path / "outputs", sig)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    stopped = read_metrics(run_dir)
    if sig == signal.SIGTERM:  # a checkpoint at the step it stopped, a distinct exit status, status interrupted
        assert "interrupted at epoch" in output and "resume=true" in output
        assert process.returncode == EXIT_INTERRUPTED
        assert stopped["status"] == "interrupted" and stopped["resume_from"].endswith("last.ckpt")
    else:  # no chance to write anything: the run keeps its epoch-end checkpoint and says running
        assert stopped["status"] == "running"

    resumed = run_alexlab("train", *args, "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "alexlab: resuming" in resumed.stderr and "resuming from" in resumed.stdout + resumed.stderr
    assert run_dirs(tmp_path / "outputs") == [run_dir]  # went on in the same directory
    finished = read_metrics(run_dir)
    assert finished["status"] == "finished"
    assert [row["epoch"] for row in finished["history"]] == [0, 1, 2]
    assert comparable(finished) == comparable(unbroken)  # bit for bit: mid-epoch (SIGTERM) or from the epoch's end


def test_resume_without_an_unfinished_run_is_one_line(alexlab, tmp_path):
    result = alexlab("train", *RUN, "resume=true", expect_ok=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("alexlab: error: resume=true: no unfinished run")


# slow: a sweep job's resume from its checkpoint is in the default run through the real-SLURM pre-emption tests
# (tests/test_slurm.py: the requeued job goes on in its job directory), and the re-run sweep's path through
# tests/test_sweeps.py (test_rerunning_an_interrupted_sweep_skips_finished_runs)
@pytest.mark.slow
def test_an_interrupted_sweep_resumes_its_unfinished_job_from_its_checkpoint(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *RUN, "seed=0,1", f"hydra.sweep.dir={sweep}", f"paths.output_root={tmp_path / 'outputs'}"]
    output = interrupt_after_first_checkpoint(start_alexlab(*args, cwd=tmp_path), sweep, signal.SIGTERM)
    assert "interrupted at epoch" in output
    assert read_metrics(sweep / "0")["status"] == "interrupted" and not (sweep / "1").exists()

    again = run_alexlab(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'last.ckpt'}" in again.stdout + again.stderr
    for job in ("0", "1"):
        metrics = read_metrics(sweep / job)
        assert metrics["status"] == "finished" and [row["epoch"] for row in metrics["history"]] == [0, 1, 2]


def test_a_crash_while_writing_never_replaces_a_good_file(tmp_path, monkeypatch):
    """metrics.json and checkpoints are written to a temporary file beside them and renamed: a failure mid-write
    (a full disk, a kill) leaves the previous file as it was, and no temporary file behind."""
    import errno

    import torch

    from alexlab.callbacks import AtomicCheckpointIO
    from alexlab.errors import CannotWrite

    record.write(tmp_path, Record(Status.FINISHED, seed=1))
    good = (tmp_path / "metrics.json").read_bytes()

    def crash(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", crash)
        with pytest.raises(CannotWrite, match=r"cannot write .*metrics.json \(No space left on device\): free some"):
            record.write(tmp_path, Record(Status.RUNNING, seed=1))
    assert (tmp_path / "metrics.json").read_bytes() == good
    assert record.read(tmp_path).status == Status.FINISHED and sorted(os.listdir(tmp_path)) == ["metrics.json"]

    checkpoint = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, checkpoint)
    good = checkpoint.read_bytes()

    def half_written(fd):
        os.write(fd, b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", half_written)
        with pytest.raises(CannotWrite, match="last.ckpt"):
            AtomicCheckpointIO().save_checkpoint({"step": 2}, checkpoint)
    assert checkpoint.read_bytes() == good
    assert torch.load(checkpoint, weights_only=True) == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt", "metrics.json"]
