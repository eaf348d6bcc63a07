"""Interruptions and resume through the real command: SIGTERM mid-epoch and kill -9 between checkpoints, then
`resume=true`, end with the metrics of an unbroken run (CPU, deterministic=true); an interrupted sweep picks up its
unfinished job from its checkpoint; checkpoints and metrics.json are never left half-written."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.commands import StartedRun, read_metrics, run_alexlab, run_dirs, start_alexlab

from alexlab import record
from alexlab.errors import EXIT_INTERRUPTED
from alexlab.record import Record, Status

RUN = (
    "experiment=smoke",
    "logger=none",
    "deterministic=true",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=10",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.image_size=48",  # about a second an epoch on 2 cores: the signal, sent once epoch 0 is saved, lands mid-run
)


def first_epoch_saved(root: Path) -> bool:
    """An epoch-end last.ckpt, and the record written after that epoch, exist somewhere under root."""
    for checkpoint in root.rglob("last.ckpt"):
        try:
            return bool(read_metrics(checkpoint.parent.parent)["history"])
        except (OSError, ValueError, KeyError):
            return False
    return False


def interrupt_after_first_checkpoint(process: StartedRun | subprocess.Popen, root: Path, sig: int) -> str:
    """Wait until the first epoch's end is saved (checkpoint and record), then send `sig`; the process's output."""
    deadline = time.time() + 300
    while not first_epoch_saved(root) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    ended = process.poll() is not None
    if ended or not first_epoch_saved(root):
        process.kill()
        output = process.communicate()[0]
        saved = "its first epoch saved" if first_epoch_saved(root) else "no epoch saved within 300 s"
        pytest.fail(f"not interrupted: the run {'ended' if ended else 'ran on'} with {saved}:\n{output}")
    process.send_signal(sig)
    output = process.communicate(timeout=300)[0]
    return output


def schedule_state(run_dir: Path) -> list[dict]:
    """The lr schedulers' states in the run's last.ckpt."""
    import torch

    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["lr_schedulers"]


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
    return {**read_metrics(run_dir), "schedule": schedule_state(run_dir)}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_interrupted_then_resumed_run_ends_as_an_unbroken_one(unbroken, tmp_path, sig):
    args = [*RUN, f"paths.output_root={tmp_path / 'outputs'}"]
    if sig == signal.SIGTERM:  # logged to W&B too, with a training-curve row every step (see wandb_stints_are_one)
        args = [*(a for a in args if a != "logger=none"), "logger=wandb", "train_curve_every=1"]
    process = start_alexlab("train", *args, cwd=tmp_path)
    output = interrupt_after_first_checkpoint(process, tmp_path / "outputs", sig)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    stopped = read_metrics(run_dir)
    if sig == signal.SIGTERM:  # a checkpoint at the step it stopped, a distinct exit status, status interrupted
        assert "interrupted at epoch" in output and "resume=true" in output
        assert process.returncode == EXIT_INTERRUPTED
        assert stopped["status"] == "interrupted" and stopped["resume_from"].endswith("last.ckpt")
    else:  # no chance to write anything: the run keeps its epoch-end checkpoint and record, which says running
        assert stopped["status"] == "running"
    assert [row["epoch"] for row in stopped["history"]] == [0]  # the record after each epoch: kill -9 keeps it too

    began = time.monotonic()
    resumed = run_alexlab("train", *args, "resume=true", cwd=tmp_path)
    took = time.monotonic() - began
    assert resumed.returncode == 0, resumed.stderr
    assert "alexlab: resuming" in resumed.stderr and "resuming from" in resumed.stdout + resumed.stderr
    # no warning of Lightning's that says nothing here: "Checkpoint directory ... exists and is not empty"
    assert "exists and is not empty" not in resumed.stdout + resumed.stderr
    assert "Warning" not in resumed.stdout + resumed.stderr
    assert run_dirs(tmp_path / "outputs") == [run_dir]  # went on in the same directory
    finished = read_metrics(run_dir)
    assert finished["status"] == "finished"
    assert [row["epoch"] for row in finished["history"]] == [0, 1, 2]
    assert comparable(finished) == comparable(unbroken)  # bit for bit: mid-epoch (SIGTERM) or from the epoch's end
    # one run in two stints: it started when the first did, and its wall time is both stints'
    assert finished["started"] == stopped["started"]
    assert 0 < finished["wall_time_s"] - stopped["wall_time_s"] <= took
    # the paper's schedule (ReduceLROnPlateau) saw every epoch's validation error, as the unbroken run's did
    assert schedule_state(run_dir) == unbroken["schedule"]
    assert unbroken["schedule"][0]["last_epoch"] == 3
    # the epochs it trained (also the one resumed in its middle) measured images/s over their own time: at least one
    # batch of 32 in the time the whole resumed process took (a clock never started gave 0.01 images/s)
    for row in finished["history"][1:]:
        assert row["perf/images_per_sec"] * took >= 32, row
    if sig == signal.SIGTERM:
        wandb_stints_are_one(run_dir, finished)


def wandb_stints_are_one(run_dir: Path, metrics: dict) -> None:
    """Each stint of a resumed run is a W&B run of its own; read as one (wandb_runs.job_run, as the report's --source
    wandb and the dashboard read a job), they hold every epoch and every row of the training curve that metrics.json
    holds, also the rows of the interrupted epoch's first part, which the first stint closed but never logged."""
    from alexlab.wandb_runs import find_runs, job_run

    stints = find_runs(run_dir)
    assert [stint.state for stint in stints] == ["failed", "finished"]
    run = job_run(stints)
    validations = [row for row in run.history if "val/top1_err" in row]
    assert [row["epoch"] for row in validations] == [0, 1, 2]
    expected = [row["val/top1_err"] for row in metrics["history"]]
    assert [row["val/top1_err"] for row in validations] == pytest.approx(expected)
    curve = [row for row in run.history if "curve/train_top1_err" in row]
    assert [row["trainer/global_step"] for row in curve] == [row["step"] for row in metrics["curve"]]
    expected = [row["train/top1_err"] for row in metrics["curve"]]
    assert [row["curve/train_top1_err"] for row in curve] == pytest.approx(expected)


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


class Clock:
    """time.perf_counter as a test sets it: 0 s means what a fresh process reads, far from any epoch's start."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_run_resumed_mid_epoch_measures_images_per_s_from_its_resume(monkeypatch, caplog):
    """Lightning's fit loop calls no on_train_epoch_start for the epoch a run resumes in the middle of: the rate and
    the time left must count from the resume (on_train_start), not from a clock that never started (which gave
    0.1 images/s in metrics.json and 'left: epoch 3 h 59 min' for a 7-minute run)."""
    from types import SimpleNamespace

    from alexlab import callbacks, terminal

    clock = Clock(10_000.0)  # a process's perf_counter is large and arbitrary
    monkeypatch.setattr(callbacks.time, "perf_counter", clock)
    monkeypatch.setattr(terminal.time, "perf_counter", clock)
    logged = {}
    module = SimpleNamespace(log=lambda key, value, **kw: logged.__setitem__(key, value))
    trainer = SimpleNamespace(
        current_epoch=1, global_step=429 + 364, world_size=1, is_global_zero=True, loggers=[],
        num_training_batches=429, estimated_stepping_batches=2 * 429, callback_metrics={},
    )  # fmt: skip
    history, lines = callbacks.EpochHistory(), terminal.ProgressLines(every_s=5)
    history.load_state_dict({"history": [{"epoch": 0}], "epoch_lr": (1, 0.01)})  # what the checkpoint held
    for callback in (history, lines):
        callback.on_train_start(trainer, module)  # and no on_train_epoch_start
    batch = (None, [0] * 128)
    with caplog.at_level("INFO", logger="alexlab"):
        for batch_idx in range(364, 429):  # the epoch's last 65 batches, 0.125 s each
            clock.now += 0.125
            trainer.global_step += 1
            for callback in (history, lines):
                callback.on_train_batch_end(trainer, module, {}, batch, batch_idx)
        history.on_train_epoch_end(trainer, module)
    assert logged["perf/images_per_sec"] == pytest.approx(1024)  # 128 images per 0.125 s
    progress = [r.getMessage() for r in caplog.records if "images/s" in r.getMessage()]
    # after 40 batches (5 s): 1024 images/s, 25 batches (3.125 s) left in the epoch and in the run
    assert progress == ["epoch 1  step 404/429  1024 images/s  left: epoch 3 s, run 3 s"]
    assert history.history[-1]["lr"] == 0.01  # the lr the epoch started at, from the checkpoint


def test_a_plateau_divides_the_lr_and_last_ckpt_holds_the_last_epoch_and_the_schedules_state(alexlab, tmp_path):
    """lr 1e-5: too small to change a prediction in 6 epochs of 5 steps, so the validation error stays and only epoch
    0 is the best.
    - The paper's schedule (patience 0) divides the lr by 10 after every epoch but the first (which sets the best),
      at most max_drops=3 times.
    - last.ckpt, what a kill -9 resumes from and what metrics.json calls the last checkpoint, is still the last
      epoch's (Lightning 2.6's save_last writes it only at epochs that improved: a resume would go back to epoch 0).
    - Its ReduceLROnPlateau has seen that last epoch's validation error (Lightning steps it only after the epoch's
      checkpoint is saved: a run resumed from it would never show it that epoch)."""
    import torch

    args = ("experiment=smoke", "logger=none", "schedule=paper", "schedule.patience=0", "optimizer.lr=1e-5")
    alexlab("train", *args, "trainer.max_epochs=6", "trainer.limit_train_batches=5")  # epochs of 5 steps
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    errors = {row["val/top1_err"] for row in metrics["history"]}
    assert len(errors) == 1 and metrics["best"]["epoch"] == 0
    assert [row["lr"] for row in metrics["history"]] == pytest.approx([1e-5, 1e-5, 1e-6, 1e-7, 1e-8, 1e-8], rel=1e-6)

    assert metrics["checkpoints"] == {
        "best": str(run_dir / "checkpoints" / "epoch000.ckpt"),
        "last": str(run_dir / "checkpoints" / "last.ckpt"),
    }
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch000.ckpt", "last.ckpt"]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (5, 6 * 5)  # 6 epochs of 5 steps
    (plateau,) = last["lr_schedulers"]
    assert plateau["last_epoch"] == 6 and plateau["best"] == pytest.approx(errors.pop(), abs=1e-6)
