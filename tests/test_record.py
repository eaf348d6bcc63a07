"""The run record and the run directory (alexlab.record): the schema, atomic writes, how a run ended, claiming a
directory; and, through the real `alexlab`, the families of faults it settles: a command that refuses leaves every
file it found byte-identical (a test into a training's directory, a run into another run's, a sweep whose axes come in
another order), two workers never run one job, a signal outside the training loop ends a run as interrupted and
resumable, the CSV keeps its rows across a resume, a diverged single run is recorded as diverged."""

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.commands import FEW_BATCHES, read_metrics, run_alexlab, run_alexlab_here, run_dirs, tree_digest

from alexlab import files, overrides, record
from alexlab.errors import BadFile, DirectoryBusy, DirectoryTaken, Diverged
from alexlab.record import Record, Status
from alexlab.signals import Interrupted

TESTS = Path(__file__).resolve().parent
FAST = ("experiment=smoke", "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=4")
FAST += ("trainer.limit_val_batches=1", "trainer.limit_test_batches=1")


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The CSV log's rows, each as its non-empty columns."""
    import csv

    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(file)]


def one_line(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("alexlab: error:"), output
    return last


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished training (2 epochs of 4 batches, CSV log) in its run directory."""
    root = tmp_path_factory.mktemp("finished")
    result = run_alexlab("train", *FAST, f"hydra.run.dir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "run"


# --- the record ---------------------------------------------------------------------------------------------------


def test_a_record_is_written_atomically_and_read_back_as_it_was(tmp_path):
    written = Record(Status.FINISHED, overrides=["depth='5'"], seed=3, best={"val/top1_err": 0.25, "epoch": 1})
    record.write(tmp_path, written)
    assert record.read(tmp_path) == written
    assert record.read(tmp_path).value() == 0.25 and record.read(tmp_path).value("test/top1_err") != 0.25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left
    assert oct((tmp_path / "metrics.json").stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert record.read(tmp_path / "nothing") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2]", "holds a JSON list"),
        ('{"task": "train"}', "has no status"),
        ('{"status": "done"}', "'done' is not a valid Status"),
        ('{"status": "finished", "task": "eval"}', "task 'eval'"),
        ('{"status": "finished", "best": {"val/top1_err": "low"}}', "best must map names to numbers"),
        ('{"status": "finished", "overrides": "depth=5"}', "overrides must be a list"),
        ('{"status": "finished", "history": [1]}', "history must be a list of objects"),
        ('{"status": "finished", "seed": "one"}', "seed 'one'"),
        ('{"status": "finish', "not JSON"),
    ],
)
def test_a_file_that_is_not_a_record_is_refused_in_one_line(tmp_path, text, why):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(BadFile, match="metrics.json") as error:
        record.read(tmp_path)
    assert why in str(error.value) and "\n" not in str(error.value)


def test_how_a_run_ended_is_classified_in_one_place():
    import optuna
    from hydra.errors import InstantiationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    assert record.ending(KeyboardInterrupt())[0] == Status.INTERRUPTED
    assert record.ending(SIGTERMException())[0] == Status.INTERRUPTED
    assert record.ending(Interrupted("SIGTERM received"))[0] == Status.INTERRUPTED
    assert record.ending(optuna.TrialPruned("epoch 1")) == (Status.PRUNED, "TrialPruned: epoch 1")
    assert record.ending(Diverged("diverged: loss is nan")) == (Status.DIVERGED, "Diverged: diverged: loss is nan")
    assert record.ending(RuntimeError("boom\nmore")) == (Status.FAILED, "RuntimeError: boom")
    wrapped = InstantiationException("Error in call to target 'x':")
    wrapped.__cause__ = ValueError("batch_size should be a positive integer")
    assert record.ending(wrapped) == (Status.FAILED, "ValueError: batch_size should be a positive integer")


# --- claiming a directory -----------------------------------------------------------------------------------------


def test_a_directory_takes_a_new_run_or_its_own_run_and_nothing_else(tmp_path):
    assert record.check_claim(tmp_path / "new", ["depth=5"], "train") is None
    record.write(tmp_path, Record(Status.INTERRUPTED, overrides=["depth=5"]))
    assert record.check_claim(tmp_path, ["depth=5", "resume=true"], "train").status == Status.INTERRUPTED
    with pytest.raises(DirectoryTaken, match=r"other overrides \(depth=5\)"):
        record.check_claim(tmp_path, ["depth=3"], "train")
    with pytest.raises(DirectoryTaken, match="holds a train run .* alexlab test writes into a directory of its own"):
        record.check_claim(tmp_path, ["depth=5"], "test")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(DirectoryTaken, match="is a sweep directory"):
        record.check_claim(sweep, [], "train")
    started = tmp_path / "started" / ".hydra"  # a job killed before it wrote its record
    started.mkdir(parents=True)
    (started / "overrides.yaml").write_text("- depth=5\n")
    assert record.check_claim(started.parent, ["depth=5"], "train") is None
    with pytest.raises(DirectoryTaken, match="started with other overrides"):
        record.check_claim(started.parent, ["depth=3"], "train")


def test_a_directory_is_held_by_one_process_at_a_time(tmp_path):
    with record.claim(tmp_path, ["depth=5"], "train") as previous:
        assert previous is None
        busy = pytest.raises(DirectoryBusy, match=r"another alexlab process \(pid \d+\)")
        with busy, record.claim(tmp_path, ["depth=5"], "train"):
            pass
        other = subprocess.run(  # another process: refused while this one holds it
            [
                sys.executable,
                "-c",
                f"from alexlab import record\nwith record.claim({str(tmp_path)!r}, [], 'train'): pass",
            ],
            capture_output=True,
            text=True,
        )
        assert "DirectoryBusy" in other.stderr
    with record.claim(tmp_path, ["depth=5"], "train"):  # released with the with block
        pass


def test_a_run_resumes_from_its_newest_whole_checkpoint(tmp_path):
    import os

    assert files.resume_checkpoint(tmp_path) is None
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    torch.save({"epoch": 0}, checkpoints / "epoch000.ckpt")
    (checkpoints / "last.ckpt").write_bytes(b"PK\x03\x04 cut short by a full disk")  # newer, but not whole
    os.utime(checkpoints / "epoch000.ckpt", (1, 1))
    assert files.resume_checkpoint(tmp_path) == checkpoints / "epoch000.ckpt"
    torch.save({"epoch": 1}, tmp_path / "hpc_ckpt_1.ckpt")
    assert files.resume_checkpoint(tmp_path) == tmp_path / "hpc_ckpt_1.ckpt"

    runs = tmp_path / "out" / "runs"
    for name, status in (("a", Status.FAILED), ("b", Status.FINISHED), ("c", Status.INTERRUPTED)):
        record.write(runs / name, Record(status, overrides=["seed=1"]))
        torch.save({}, runs / name / "hpc_ckpt_1.ckpt")
    record.write(runs / "d", Record(Status.INTERRUPTED, overrides=["seed=2"]))  # other overrides
    torch.save({}, runs / "d" / "hpc_ckpt_1.ckpt")
    assert overrides.find_resumable(tmp_path / "out", ["seed=1", "resume=True"]) == runs / "c"
    assert overrides.find_resumable(tmp_path / "out", ["seed=3"]) is None


def test_a_failed_write_is_one_line_naming_the_file_and_the_way_out():
    from alexlab.messages import user_error

    full = OSError(errno.ENOSPC, "No space left on device", "/data/run/checkpoints/last.ckpt")
    assert user_error(full) == (
        "cannot write /data/run/checkpoints/last.ckpt (No space left on device): free some space, or set "
        "paths.output_root to another disk"
    )
    read_only = OSError(errno.EROFS, "Read-only file system", "/data/run/.hydra")
    assert user_error(read_only).startswith("cannot write /data/run/.hydra (Read-only file system): set paths.")


# --- through the command --------------------------------------------------------------------------------------------


def test_a_test_never_writes_into_its_trainings_directory(finished, tmp_path):
    before = tree_digest(finished)
    ckpt = finished / "checkpoints" / "last.ckpt"
    refused = run_alexlab_here("test", f"ckpt_path={ckpt}", f"hydra.run.dir={finished}", *FAST, cwd=tmp_path)
    assert "alexlab test writes into a directory of its own" in one_line(refused)
    other = run_alexlab_here("train", *FAST, "seed=7", f"hydra.run.dir={finished}", cwd=tmp_path)
    assert "already holds a train run with other overrides" in one_line(other)
    assert tree_digest(finished) == before  # .hydra/, metrics.json, checkpoints, csv: all as they were

    tested = run_alexlab("test", f"ckpt_path={ckpt}", *FAST, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    (test_dir,) = run_dirs(tmp_path)
    assert read_metrics(test_dir)["task"] == "test" and read_metrics(test_dir)["status"] == "finished"
    assert tree_digest(finished) == before


def test_a_sweep_with_its_axes_in_another_order_is_refused_before_anything_is_written(smoke_grid, tmp_path):
    sweep = tmp_path / "grid"
    shutil.copytree(smoke_grid, sweep)
    before = tree_digest(sweep)
    args = ("-m", "experiment=smoke", *FEW_BATCHES, "depth=5,3", "dropout=on,off", f"hydra.sweep.dir={sweep}")
    reordered = run_alexlab_here(*args, f"paths.output_root={smoke_grid.parent / 'outputs'}", cwd=tmp_path)
    line = one_line(reordered)
    assert "holds the job" in line and "give the sweep's overrides in their first order" in line
    assert "dropout=on,off depth='5','3'" in line
    assert tree_digest(sweep) == before


def test_two_workers_of_one_sweep_never_run_the_same_job(tmp_path):
    args = ["-m", *FAST, "dropout=on,off", "depth=5,3", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    from helpers.commands import start_alexlab

    first = start_alexlab(*args, cwd=tmp_path)
    second = start_alexlab(*args, cwd=tmp_path)
    outputs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    trained = sum(len(re.findall(r"^finished in .*: test top-1 error", output, re.M)) for output in outputs)
    skipped = sum(output.count("is in use") + output.count("already finished") for output in outputs)
    assert trained == 4 and skipped == 4, outputs  # each of the 4 jobs trained once, and left alone once
    for job in range(4):
        assert read_metrics(tmp_path / "sweep" / str(job))["status"] == "finished"


@pytest.mark.parametrize("hook", ["on_fit_end", "on_test_start"])
def test_a_signal_outside_the_training_loop_ends_the_run_interrupted_and_resumable(tmp_path, hook):
    """SIGTERM after the last epoch (between fit and test) or while testing: exit 75, the record says interrupted
    with the checkpoint to go on from; `resume=True` (any spelling of true) finishes it in the same directory, and
    the CSV keeps the epochs from before."""
    args = (*FAST, "+callbacks.signal._target_=signal_callbacks.SigtermAt", f"+callbacks.signal.hook={hook}")
    args += (f"+callbacks.signal.once={tmp_path / 'sent'}", f"paths.output_root={tmp_path}")
    env = {"PYTHONPATH": str(TESTS)}
    stopped = run_alexlab("train", *args, cwd=tmp_path, env=env)
    assert stopped.returncode == 75, stopped.stdout + stopped.stderr
    (run_dir,) = run_dirs(tmp_path)
    interrupted = read_metrics(run_dir)
    assert interrupted["status"] == "interrupted" and interrupted["error"].startswith("Interrupted: SIGTERM")
    assert interrupted["resume_from"] and Path(interrupted["resume_from"]).is_file()
    assert [row["epoch"] for row in interrupted["history"]] == [0, 1]
    csv_before = csv_rows(run_dir / "csv" / "metrics.csv")
    assert len(csv_before) > 1

    resumed = run_alexlab("train", *args, "resume=True", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert run_dirs(tmp_path) == [run_dir]
    done = read_metrics(run_dir)
    assert done["status"] == "finished" and "test/top1_err" in done["final"]
    csv_after = csv_rows(run_dir / "csv" / "metrics.csv")  # the same epochs, kept; the test's in the last one
    assert [row["epoch"] for row in csv_after] == [row["epoch"] for row in csv_before] == ["0", "1"]
    for before, after in zip(csv_before, csv_after, strict=True):  # (the step: the test's, in the last row)
        assert before.items() - {("step", before["step"])} <= after.items(), (before, after)
    assert "test/top1_err" in csv_after[-1]


def test_a_signal_while_fit_loads_stops_the_run_there_not_after_the_whole_fit(tmp_path):
    """SIGTERM in fit's setup (the data loads, before Lightning's own handler is in place): the run stops at once,
    recorded interrupted with no epoch trained, instead of noting the signal and training every epoch first."""
    args = (*FAST, "+callbacks.signal._target_=signal_callbacks.SigtermAt", "+callbacks.signal.hook=setup")
    args += (f"+callbacks.signal.once={tmp_path / 'sent'}", f"paths.output_root={tmp_path}")
    stopped = run_alexlab("train", *args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert stopped.returncode == 75, stopped.stdout + stopped.stderr
    (run_dir,) = run_dirs(tmp_path)
    interrupted = read_metrics(run_dir)
    assert interrupted["status"] == "interrupted" and interrupted["error"].startswith("Interrupted: SIGTERM")
    assert interrupted["history"] == []


def test_the_csv_log_has_one_row_per_epoch_and_keeps_it_on_resume(tmp_path):
    from alexlab.csv_log import EpochRowsWriter

    writer = EpochRowsWriter(str(tmp_path))
    for epoch in (0, 1):
        writer.log_metrics({"lr": 0.1 / (epoch + 1)}, step=10 * epoch)  # the lr monitor: no epoch, at its start
        writer.log_metrics({"train/loss": 2.0 - epoch, "epoch": epoch}, step=10 * epoch + 9)
        writer.log_metrics({"val/top1_err": 0.5 - 0.1 * epoch, "epoch": epoch}, step=10 * epoch + 9)
        writer.save()
    writer.log_metrics({"test/top1_err": 0.35, "epoch": 2}, step=19)  # Lightning's epoch counter after fit: 2
    writer.save()
    rows = csv_rows(tmp_path / "metrics.csv")
    assert rows == [
        {"epoch": "0", "step": "9", "lr": "0.1", "train/loss": "2.0", "val/top1_err": "0.5"},
        {"epoch": "1", "step": "19", "lr": "0.05", "train/loss": "1.0", "val/top1_err": "0.4", "test/top1_err": "0.35"},
    ]
    resumed = EpochRowsWriter(str(tmp_path))  # a resumed run's writer: the rows stay, its epochs join them
    resumed.log_metrics({"train/loss": 0.5, "epoch": 2}, step=29)
    resumed.save()
    assert [row["epoch"] for row in csv_rows(tmp_path / "metrics.csv")] == ["0", "1", "2"]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB filesystem (tmpfs) that fills up during a smoke run's first checkpoint; needs root, as CI has."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_ends_the_run_in_one_line_with_no_checkpoint_cut_short(small_disk, tmp_path):
    result = run_alexlab("train", *FAST, f"paths.output_root={small_disk}", cwd=tmp_path)
    last = one_line(result)
    assert last.startswith("alexlab: error: cannot write ") and "No space left on device" in last, last
    (run_dir,) = run_dirs(small_disk)
    checkpoints = list(run_dir.rglob("*.ckpt"))
    assert all(files.readable_checkpoint(path) for path in checkpoints), checkpoints  # whole, or not there
    assert not [path for path in run_dir.rglob("*") if path.name.startswith(".") and ".tmp" in path.name]
    ended = record.read(run_dir)
    assert ended is None or ended.status == Status.FAILED  # the record, when it fits, says so; never `running`


def test_a_diverged_single_run_is_recorded_and_ends_in_one_line(tmp_path):
    result = run_alexlab("train", *FAST, "optimizer.lr=1e12", f"paths.output_root={tmp_path}", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]  # one line: no torchmetrics warning
    assert line.startswith("alexlab: error: diverged:"), output
    (run_dir,) = run_dirs(tmp_path)
    assert read_metrics(run_dir)["status"] == "diverged"


def test_checkpoints_that_are_not_weights_are_refused_in_one_line(finished, tmp_path):
    import argparse

    not_tensors = tmp_path / "numbers.ckpt"
    torch.save({"state_dict": {"model.conv1.weight": 1.0}}, not_tensors)
    line = one_line(run_alexlab_here("test", f"ckpt_path={not_tensors}", *FAST, cwd=tmp_path))
    assert "values that are not tensors (model.conv1.weight)" in line

    run_dir = tmp_path / "requeued"  # a requeued run whose hpc checkpoint holds a Python object
    shutil.copytree(finished, run_dir)
    ended = record.read(run_dir)
    ended.status = Status.INTERRUPTED
    record.write(run_dir, ended)
    torch.save({"state_dict": {}, "hparams": argparse.Namespace(lr=1)}, run_dir / "hpc_ckpt_1.ckpt")
    line = one_line(run_alexlab_here("train", *FAST, f"hydra.run.dir={run_dir}", cwd=tmp_path))
    assert "hpc_ckpt_1.ckpt holds a Python object (argparse.Namespace)" in line


def test_the_report_reads_records_through_their_owner(smoke_grid, tmp_path):
    from alexlab.report import build_report

    parent = tmp_path / "two copies"
    shutil.copytree(smoke_grid, parent / "a")
    shutil.copytree(smoke_grid, parent / "b")
    (parent / "b" / "3" / "metrics.json").write_text("[1, 2]")
    report = build_report(parent / "a")
    assert [len(row.runs) for row in report.rows] == [1, 1, 1, 1]
    both = build_report(parent)  # each run once, not twice; the copies and the unreadable record listed
    assert sum(len(row.runs) for row in both.rows) == 4
    statuses = {run.job: (run.status, run.error) for run in both.runs}
    assert statuses["b/3"][0] == "unreadable" and "not an alexlab run record" in statuses["b/3"][1]
    assert all(statuses[f"b/{job}"][0] == "copy" and f"a copy of a/{job}" in statuses[f"b/{job}"][1]
               for job in range(3))  # fmt: skip


def test_a_secret_in_a_sweep_never_stops_it_from_resuming(tmp_path):
    args = ["-m", *FAST, "trainer.max_epochs=1", "+db_password=hunter2", "dropout=on,off"]
    args.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    first = run_alexlab(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_alexlab(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (again.stdout + again.stderr).count("already finished") == 2
    assert "hunter2" not in "".join(p.read_text() for p in (tmp_path / "sweep").rglob("*.yaml"))


def test_printing_the_config_masks_secrets(tmp_path):
    printed = run_alexlab_here("+db_password=hunter2", "+wandb_api_key='abc def'", "--cfg", "job", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "db_password: <masked>" in printed.stdout and "wandb_api_key: <masked>" in printed.stdout
    assert "hunter2" not in printed.stdout and "abc" not in printed.stdout


def test_sweep_functions_over_a_numeric_group_reach_the_jobs_as_options(tmp_path):
    from alexlab.overrides import quote_numeric_options

    assert quote_numeric_options(["depth=choice(5,3)", "depth=range(3,7)", "depth=range(3, 7, 2)"]) == [
        "depth='5','3'", "depth='3','4','5','6'", "depth='3','5'"]  # fmt: skip
    assert quote_numeric_options(["hydra/sweeper=optuna", "depth=choice(5,3)"])[1] == "depth=choice(5,3)"
    empty = run_alexlab_here("-m", "depth=range(5,3)", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert "depth=range(5,3): this sweep gives no values" in one_line(empty)
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_file_that_is_not_yaml_is_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("hydra:\n  sweeper:\n    params: {depth: [5,\n")
    line = one_line(run_alexlab_here("sweep", str(broken), cwd=tmp_path))
    assert f"sweep file {broken} is not valid YAML at line" in line


def test_the_switches_are_read_from_conf(tmp_path, monkeypatch):
    """A new config group whose options write a network argument is a switch everywhere, with no list to edit."""
    from importlib import resources

    from alexlab import config_groups

    assert config_groups.switches() == ("model", "depth", "dropout", "lrn", "pooling", "activation", "split", "init",
                                        "augment", "test_views")  # fmt: skip
    assert {"data", "optimizer", "schedule", "trainer", "experiment", "ablation"} <= set(config_groups.identity())
    assert not {"logger", "callbacks", "launcher"} & set(config_groups.identity())
    conf = tmp_path / "conf"
    shutil.copytree(Path(str(resources.files("alexlab.conf"))), conf)
    (conf / "bn").mkdir()
    for option in ("on", "off"):
        (conf / "bn" / f"{option}.yaml").write_text(f"# @package model\n# Batch norm {option}.\nbn: {option}\n")
    monkeypatch.setattr(config_groups.resources, "files", lambda package: conf)
    for cached in (config_groups.group_options, config_groups.switches, config_groups.identity):
        cached.cache_clear()
    try:
        assert "bn" in config_groups.switches() and "bn" in config_groups.identity()
    finally:
        for cached in (config_groups.group_options, config_groups.switches, config_groups.identity):
            cached.cache_clear()


def test_hydra_saves_a_jobs_configs_only_where_the_job_will_run(tmp_path):
    """hydra.output_subdir (record.configs_subdir): .hydra/ for a new job or one to go on with; none where the job
    finished or another process runs it (a resumed sweep, a second worker: they skip it and leave its files)."""
    new = tmp_path / "new"
    new.mkdir()
    assert record.configs_subdir(str(new)) == ".hydra"
    assert not (new / record.LOCK).exists()  # asking creates nothing
    done = tmp_path / "done"
    done.mkdir()
    record.write(done, record.Record(status=record.Status.FINISHED, task="train"))
    assert record.configs_subdir(str(done)) is None
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    record.write(stopped, record.Record(status=record.Status.INTERRUPTED, task="train"))
    assert record.configs_subdir(str(stopped)) == ".hydra"
    with record.claim(stopped, [], "train"):  # a worker runs it now
        assert record.configs_subdir(str(stopped)) is None
        with pytest.raises(DirectoryBusy), record.claim(stopped, [], "train"):  # the question took no lock that lasts
            pass
    assert record.configs_subdir(str(stopped)) == ".hydra"
    with record.claim(stopped, [], "train"):  # nor did it keep the job from being claimed
        pass
    # and the job's log file, the same way: its own where it runs, the null device where it is skipped
    assert record.job_log(str(new), "alexlab") == str(new / "alexlab.log")
    assert record.job_log(str(done), "alexlab") == os.devnull
    assert record.job_log(str(stopped), "alexlab") == str(stopped / "alexlab.log")
    with record.claim(stopped, [], "train"):
        assert record.job_log(str(stopped), "alexlab") == os.devnull
