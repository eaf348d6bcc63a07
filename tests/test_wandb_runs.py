"""alexlab.wandb_runs: the record-log framing on hand-built files, then files written by wandb itself and by alexlab."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from helpers.commands import read_metrics, run_dirs
from wandb.proto import wandb_internal_pb2 as pb

from alexlab.wandb_runs import BLOCK_SIZE, WandbRun, find_runs, job_run, read_records, read_run

FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def write_log(path, records):
    """Write `records` as wandb-core's writer does (core/pkg/leveldb): the ':W&B' header, then 32 KiB blocks of
    chunks with a CRC-32 of type and payload; a block's tail of fewer than 7 bytes is zeros. Returns the file offset
    where each record ends, the chunk types written and the number of padded block tails."""
    out = bytearray(struct.pack("<4sHB", b":W&B", 0xBEE1, 0))
    ends, kinds, pads = [], [], 0

    def chunk(kind, payload):
        out.extend(struct.pack("<IHB", zlib.crc32(bytes([kind]) + payload), len(payload), kind) + payload)
        kinds.append(kind)

    for record in records:
        data = record.SerializeToString()
        first = True
        while True:
            room = BLOCK_SIZE - len(out) % BLOCK_SIZE
            if room < 7:
                out.extend(bytes(room))
                pads += 1
                continue
            part, data = data[: room - 7], data[room - 7 :]
            chunk((FULL if first else LAST) if not data else (FIRST if first else MIDDLE), part)
            first = False
            if not data:
                break
        ends.append(len(out))
    path.write_bytes(bytes(out))
    return ends, kinds, pads


def history(i, size=0):
    record = pb.Record(num=i)
    record.history.item.add(key="_step", value_json=str(i))
    if size:
        record.history.item.add(key="blob", value_json=json.dumps("x" * size))
    return record


def sized(target):
    """A history record whose serialised size is exactly `target` bytes."""
    for size in range(target, 0, -1):
        if history(1, size).ByteSize() == target:
            return history(1, size)
    raise AssertionError(target)


def as_bytes(records):
    return [r.SerializeToString() for r in records]


def test_records_spanning_blocks_and_padded_block_tails_read_back(tmp_path):
    # the first record leaves 3 bytes in block 0 (padding), then records of 1, 2 and 3 chunks
    records = [sized(BLOCK_SIZE - 7 - 7 - 3), history(2), history(3, 40_000), history(4), history(5, 70_000)]
    path = tmp_path / "run-abc.wandb"
    ends, kinds, pads = write_log(path, records)
    assert pads >= 1 and kinds.count(FIRST) == 2 and kinds.count(MIDDLE) >= 1 and kinds.count(LAST) == 2
    assert ends[0] == BLOCK_SIZE - 3

    read, truncated = read_records(path)
    assert as_bytes(read) == as_bytes(records)
    assert not truncated


def test_a_file_cut_anywhere_reads_the_whole_records_before_the_cut(tmp_path):
    records = [history(1), history(2, 30), history(3)]
    path = tmp_path / "run-abc.wandb"
    ends, _, _ = write_log(path, records)
    data = path.read_bytes()
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        read, truncated = read_records(path)
        whole = sum(end <= cut for end in ends)
        assert as_bytes(read) == as_bytes(records[:whole]), cut
        assert truncated == (cut > 7 and cut not in ends), cut


def test_a_record_cut_at_a_block_boundary_is_left_out(tmp_path):
    # wandb-core writes whole blocks: a killed run's file ends at a block boundary, inside a record
    records = [history(1), history(2, 40_000), history(3)]
    path = tmp_path / "run-abc.wandb"
    write_log(path, records)
    path.write_bytes(path.read_bytes()[:BLOCK_SIZE])

    run = read_run(path)
    assert [row["_step"] for row in run.history] == [1]
    assert run.truncated and run.state == "running" and run.exit_code is None


@pytest.mark.parametrize("offset", [0, 4, 6, 7, 12], ids=["crc", "length", "type", "payload", "payload-end"])
def test_a_damaged_chunk_ends_the_read(tmp_path, offset):
    records = [history(1), history(2, 5), history(3)]
    path = tmp_path / "run-abc.wandb"
    ends, _, _ = write_log(path, records)
    data = bytearray(path.read_bytes())
    data[ends[0] + offset] ^= 0x41  # in the second record's chunk
    path.write_bytes(bytes(data))

    read, truncated = read_records(path)
    assert as_bytes(read) == as_bytes(records[:1])
    assert truncated


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04 not a run", b":W&B\xe1\xbe\x01" + bytes(20), b"\x00" * 7, b"{}"],
    ids=["zip", "version-1", "zeros", "json"],
)
def test_a_file_that_is_not_a_wandb_run_file_is_refused_in_one_line(tmp_path, content):
    path = tmp_path / "run-abc.wandb"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        read_run(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"", b":W&", b":W&B\xe1\xbe\x00"], ids=["empty", "part-header", "header"])
def test_a_file_not_written_yet_is_a_running_run_without_records(tmp_path, content):
    # wandb-core buffers the first block, header included: a just-started run's file can be empty
    path = tmp_path / "offline-run-20250101_000000-abc" / "run-abc.wandb"
    path.parent.mkdir()
    path.write_bytes(content)
    run = read_run(path.parent)
    assert (run.path, run.id, run.state, run.exit_code) == (path, "abc", "running", None)
    assert run.history == [] and run.name is None and not run.truncated


def test_a_directory_without_a_run_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run-"):
        read_run(tmp_path)


def run_records(run_id, start, exit_code=None):
    run = pb.Record()
    run.run.run_id, run.run.display_name, run.run.run_group, run.run.job_type = run_id, "a-name", "grid", "train"
    run.run.project = "alexlab"
    run.run.tags.extend(["depth=5", "lrn=off"])
    run.run.start_time.FromNanoseconds(int(start * 1e9))
    run.run.config.update.add(key="depth", value_json='"5"')
    config = pb.Record()
    config.config.update.add(nested_key=["optimizer", "lr"], value_json="0.01")
    config.config.update.add(key="gone", value_json="1")
    removal = pb.Record()
    removal.config.remove.add(key="gone")
    summaries = [pb.Record() for _ in range(3)]
    summaries[0].summary.update.add(nested_key=["val/top1_err"], value_json='{"min": 0.5}')
    summaries[0].summary.update.add(key="img", value_json="1")
    summaries[1].summary.update.add(nested_key=["val/top1_err"], value_json='{"min": 0.25}')
    summaries[1].summary.update.add(nested_key=["_wandb", "runtime"], value_json="3")
    summaries[2].summary.remove.add(key="img")
    rows = [history(0), history(1)]
    rows[1].history.item.add(nested_key=["val/top1_err"], value_json="NaN")
    records = [run, config, rows[0], summaries[0], removal, rows[1], summaries[1], summaries[2]]
    if exit_code is not None:
        records.append(pb.Record(exit=pb.RunExitRecord(exit_code=exit_code, runtime=3)))
    return records


def test_run_fields_config_history_and_summary_are_decoded(tmp_path):
    path = tmp_path / "run-abc.wandb"
    write_log(path, run_records("abc", 1_700_000_000.25, exit_code=2))
    run = read_run(path)
    assert (run.id, run.name, run.group, run.job_type, run.project) == ("abc", "a-name", "grid", "train", "alexlab")
    assert run.tags == ["depth=5", "lrn=off"]
    assert run.started == pytest.approx(1_700_000_000.25)
    assert run.config == {"depth": "5", "optimizer": {"lr": 0.01}}
    assert run.history[0] == {"_step": 0}
    assert run.history[1]["_step"] == 1 and run.history[1]["val/top1_err"] != run.history[1]["val/top1_err"]  # NaN
    assert run.summary == {"val/top1_err": {"min": 0.25}, "_wandb": {"runtime": 3}}
    assert (run.state, run.exit_code, run.runtime) == ("failed", 2, 3.0)


def test_find_runs_sorts_by_start_time_then_path(tmp_path):
    for directory, start, exit_code in [("a", 30.0, 0), ("b", 10.0, 0), ("c", None, None), ("d/e", 20.0, None)]:
        path = tmp_path / directory / f"offline-run-x-{directory[-1]}" / f"run-{directory[-1]}.wandb"
        path.parent.mkdir(parents=True)
        records = run_records(directory[-1], start or 0.0, exit_code)
        if start is None:
            records[0].run.ClearField("start_time")
        write_log(path, records)
    runs = find_runs(tmp_path)
    assert [(r.id, r.started, r.state) for r in runs] == [
        ("b", 10.0, "finished"),
        ("e", 20.0, "running"),
        ("a", 30.0, "finished"),
        ("c", None, "running"),
    ]


WANDB_SCRIPT = """
import sys
import wandb

run = wandb.init(mode="offline", dir=sys.argv[1], project="p", name="direct", group="g", tags=["t"], config={"x": 1})
run.define_metric("val/top1_err", summary="min")
for err in (0.5, 0.25, 0.75):
    run.log({"val/top1_err": err, "nested": {"a": err}})
run.log({"blob": "x" * 70000})  # one record over two blocks
run.summary["status"] = "failed"
run.finish(exit_code=3)
"""


def test_a_run_written_by_wandb_itself(tmp_path):
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(WANDB_SCRIPT), str(tmp_path)], check=True, env=env)
    (run,) = find_runs(tmp_path)
    assert run.path.parent.name.startswith("offline-run-") and run.path.name == f"run-{run.id}.wandb"
    assert (run.name, run.group, run.tags, run.project, run.config["x"]) == ("direct", "g", ["t"], "p", 1)
    assert [row["val/top1_err"] for row in run.history[:3]] == [0.5, 0.25, 0.75]
    assert [row["nested"] for row in run.history[:3]] == [{"a": 0.5}, {"a": 0.25}, {"a": 0.75}]
    assert run.history[3]["blob"] == "x" * 70000
    assert run.summary["val/top1_err"] == {"min": 0.25}
    assert run.summary["status"] == "failed"
    assert (run.state, run.exit_code, run.truncated) == ("failed", 3, False)
    assert run.path.stat().st_size > 2 * BLOCK_SIZE

    # what a killed run leaves: wandb-core writes whole blocks, so the file ends at a block boundary
    cut = tmp_path / "cut" / run.path.name
    cut.parent.mkdir()
    cut.write_bytes(run.path.read_bytes()[:BLOCK_SIZE])
    partial = read_run(cut)
    assert partial.truncated and partial.state == "running" and partial.exit_code is None
    assert [row["val/top1_err"] for row in partial.history] == [0.5, 0.25, 0.75]


def test_an_offline_alexlab_run(alexlab, tmp_path):
    before = time.time()
    alexlab("experiment=smoke", "logger=wandb", "depth=3", "seed=3")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    (run,) = find_runs(tmp_path)
    assert run.path.parent.parent == run_dir / "wandb"
    assert read_run(run.path.parent) == run

    assert run.name.startswith("model=small-depth=3-dropout=on-lrn=on-") and run.name.endswith("-seed=3")
    assert run.group is None and run.job_type == "train" and run.project == "alexlab"
    assert "depth=3" in run.tags and "dropout=on" in run.tags
    assert (run.config["depth"], run.config["dropout"], run.config["lrn"], run.config["seed"]) == ("3", "on", "on", 3)
    assert run.config["config"]["model"]["depth"] == 3
    assert (run.state, run.exit_code, run.truncated) == ("finished", 0, False)
    assert before < run.started < time.time()

    val_rows = [row for row in run.history if "val/top1_err" in row]
    assert [row["epoch"] for row in val_rows] == [row["epoch"] for row in metrics["history"]] == [0, 1]
    assert [row["val/top1_err"] for row in val_rows] == pytest.approx([r["val/top1_err"] for r in metrics["history"]])
    assert all("trainer/global_step" in row and "_step" in row for row in run.history)
    best = run.summary["val/top1_err"]  # {"min": x} under define_metric(summary="min"), else the last value
    expected = metrics["best"]["val/top1_err"] if isinstance(best, dict) else val_rows[-1]["val/top1_err"]
    assert (best["min"] if isinstance(best, dict) else best) == pytest.approx(expected)
    assert run.summary["test/top1_err"] == pytest.approx(metrics["final"]["test/top1_err"])


def stint(name: str, started: float, epochs: dict[int, int], curve: list[int], state: str) -> WandbRun:
    """A W&B run of one stint: per-epoch rows {epoch: step} and training-curve rows at the given steps."""
    rows = [{"epoch": e, "trainer/global_step": step, "val/top1_err": 0.5, "from": name} for e, step in epochs.items()]
    rows += [{"trainer/global_step": step, "curve/train_top1_err": 0.5, "from": name} for step in curve]
    return WandbRun(path=Path(name), id=name, history=rows, started=started, state=state, summary={"from": name})


def test_a_jobs_stints_read_as_one_run_each_row_from_the_stint_that_trained_it_last():
    """Stint a: epochs 0-1 and the curve to step 20, killed in epoch 2. Stint b resumed from epoch 0's end (its
    checkpoint of epoch 1 was cut short), trained epoch 1 again and logged its curve again. Stint c: after SIGTERM in
    epoch 2 at step 25, from there (it logs the curve rows its checkpoint held but a never logged: step 25)."""
    a = stint("a", 1.0, {0: 9, 1: 19}, [5, 10, 15, 20], "running")
    b = stint("b", 2.0, {1: 19}, [15, 20, 25], "failed")
    c = stint("c", 3.0, {2: 29}, [25, 30], "finished")
    run = job_run([a, b, c])
    epochs = [(row["epoch"], row["from"]) for row in run.history if "epoch" in row]
    curve = [(row["trainer/global_step"], row["from"]) for row in run.history if "epoch" not in row]
    assert epochs == [(0, "a"), (1, "b"), (2, "c")]
    assert curve == [(5, "a"), (10, "a"), (15, "b"), (20, "b"), (25, "c"), (30, "c")]
    assert (run.state, run.summary, run.started, run.id) == ("finished", {"from": "c"}, 1.0, "c")
    assert job_run([a]) == a
