"""Read the runs W&B writes offline: `<save_dir>/wandb/offline-run-<date>-<id>/run-<id>.wandb`.

wandb no longer ships a Python reader for these files (0.31 writes them from its Go service, wandb-core), but it ships
the schema, `wandb.proto.wandb_internal_pb2.Record`. The framing, checked against wandb-core's writer
(core/pkg/leveldb) and against files written by wandb 0.31.0, is LevelDB's log format with a 7-byte file header:

- header: b":W&B", magic 0xBEE1 (uint16, little-endian), version 0;
- then 32 KiB blocks counted from the start of the file (the header sits in the first block). Each chunk has a
  7-byte header (CRC32, length uint16, type uint8: FULL, FIRST, MIDDLE, LAST) and a payload; a record longer than
  what is left of a block spans blocks as FIRST, MIDDLE..., LAST. A block's last bytes are zeros when fewer than 7
  are left. The checksum is plain CRC-32 (zlib's, IEEE), not masked, over the type byte and the payload: unlike
  LevelDB's masked CRC-32C, which wandb-core keeps only as an unused option.

What the offline file of an alexlab run holds (wandb 0.31.0): one header record, run (id, name, group, job_type,
tags, start time, and the config given to init), environment, stats, files, telemetry, metric (one per
define_metric), output_raw (console lines), then per `log` call a summary record (the logged keys' latest values,
or `{"min": x}` etc. for a key given a summary by define_metric) and a history record, and at the end an exit record
(code and runtime). Later config changes come as config records. Keys arrive as `key` or as `nested_key`, a path: one
element for a logged key such as "val/top1_err", several for a logged nested dict, which we rebuild as nested dicts.
There are no request records, partial_history included: what `log` sends arrives as history records.

wandb-core writes the file a block at a time (and on flushes), so a running or killed run's file usually ends at a
block boundary in the middle of a record, or holds only the header. Such a file reads as the whole records it
holds, with `truncated` set when bytes after the last whole record could not be read (a cut or damaged chunk).
"""

from __future__ import annotations

import json
import math
import netrc
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from alexlab.errors import BadValue, NotFound

# The keys of an alexlab run's W&B config besides its config groups' choices (loggers.start_wandb writes them; the
# report's --source wandb and the dashboard read them back): the seed, the command line's overrides, the commit, and
# the composed config
SEED, OVERRIDES, GIT_COMMIT, GIT_DIRTY, CONFIG = "seed", "overrides", "git_commit", "git_dirty", "config"
CONFIG_KEYS = (SEED, OVERRIDES, GIT_COMMIT, GIT_DIRTY, CONFIG, "_wandb")

if TYPE_CHECKING:  # imported where a file is read: wandb's protobufs take most of a second to import, and a run
    from wandb.proto import wandb_internal_pb2 as pb  # logging to CSV or TensorBoard needs no wandb at all

BLOCK_SIZE = 32 * 1024
FILE_HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
CHUNK = struct.Struct("<IHB")  # crc32, payload length, chunk type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    path: Path  # the run-<id>.wandb file
    id: str
    name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None
    state: str = "running"  # "finished" (exit 0), "failed" (exit != 0), "running" (no exit record yet, or killed)
    started: float | None = None  # seconds since the epoch
    project: str | None = None
    notes: str | None = None
    runtime: float | None = None  # seconds, from the exit record
    truncated: bool = False  # the file ends in a partial or damaged chunk or record: read up to there


def read_records(path: str | Path) -> tuple[list[pb.Record], bool]:
    """The records of a run file, and whether it was cut short (a partial or damaged chunk or record at the end)."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[: len(FILE_HEADER)] != FILE_HEADER[: len(data)]:
        raise BadValue(f"{path} is not a W&B run file (it does not start with the ':W&B' version 0 header)")
    records: list[pb.Record] = []
    pos, parts = len(FILE_HEADER), None  # parts: the chunks read so far of a record that spans blocks
    while True:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK.size:
            pos += left_in_block
        if pos + CHUNK.size > len(data):
            return records, pos < len(data) or parts is not None
        checksum, length, kind = CHUNK.unpack_from(data, pos)
        payload = data[pos + CHUNK.size : pos + CHUNK.size + length]
        in_sequence = kind in (FULL, FIRST) if parts is None else kind in (MIDDLE, LAST)
        if len(payload) < length or not in_sequence or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != checksum:
            return records, True
        pos += CHUNK.size + length
        if kind == FIRST:
            parts = [payload]
        elif kind == MIDDLE:
            parts.append(payload)
        else:
            if kind == LAST:
                payload, parts = b"".join([*parts, payload]), None
            record = pb.Record()
            try:
                record.ParseFromString(payload)
            except DecodeError:  # a payload that passed its CRC but is no Record
                return records, True
            records.append(record)


def read_run(path: str | Path) -> WandbRun:
    """The run in `path`: a run-<id>.wandb file, or the offline-run-<date>-<id> directory that holds one."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise NotFound(f"no run-*.wandb file in {path}")
        path = files[0]
    records, truncated = read_records(path)
    run = WandbRun(path=path, id=path.stem.removeprefix("run-"), truncated=truncated)
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            _read_run_record(run, record.run)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "history":
            row: dict = {}
            _apply(row, record.history.item, ())
            run.history.append(row)
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
            run.runtime = float(record.exit.runtime)
            run.state = "finished" if run.exit_code == 0 else "failed"
    return run


def find_runs(root: str | Path) -> list[WandbRun]:
    """Every run-*.wandb under `root`, read, sorted by start time (runs without one last), then path."""
    runs = [read_run(p) for p in Path(root).rglob("run-*.wandb") if p.is_file()]
    return sorted(runs, key=lambda r: (r.started is None, r.started or 0.0, str(r.path)))


def job_run(runs: list[WandbRun]) -> WandbRun:
    """One job's W&B runs as the one run they are: a run that an interruption stopped logs each stint it is resumed
    in as a W&B run of its own, with what that stint logged. Their history in start order (find_runs' order), each
    stint's rows replacing what the earlier stints logged of the same part of training, since a stint resumed from an
    epoch-end checkpoint trains (and logs) again what came after it: the per-epoch rows (with an `epoch`) from the
    stint's first epoch on, the per-step rows (the training curve) from its first `trainer/global_step` on. The
    name, config, summary, state and exit of the latest stint; the start of the first."""
    if not runs:
        raise ValueError("job_run needs at least one W&B run")
    history: list[dict] = []
    for stint in runs:
        first_epoch = min((row["epoch"] for row in stint.history if "epoch" in row), default=math.inf)
        first_step = min((row.get("trainer/global_step", math.inf) for row in stint.history if "epoch" not in row),
                         default=math.inf)  # fmt: skip
        history = [row for row in history if not _logged_again(row, first_epoch, first_step)] + stint.history
    return replace(runs[-1], history=history, started=runs[0].started)


def _logged_again(row: dict, first_epoch: float, first_step: float) -> bool:
    """Whether a later stint that logged from `first_epoch` (per-epoch rows) and `first_step` (per-step rows) on
    logged this row's part of training again."""
    if "epoch" in row:
        return row["epoch"] >= first_epoch
    return row.get("trainer/global_step", -1) >= first_step


def _read_run_record(run: WandbRun, record: pb.RunRecord) -> None:
    run.id = record.run_id or run.id
    run.name = record.display_name or None
    run.group = record.run_group or None
    run.job_type = record.job_type or None
    run.tags = list(record.tags)
    run.project = record.project or None
    run.notes = record.notes or None
    if record.HasField("start_time"):
        run.started = record.start_time.ToNanoseconds() / 1e9
    _apply(run.config, record.config.update, record.config.remove)


def _apply(target: dict, updates, removes) -> None:
    """Apply config/summary/history items in order: each names its key by `key` or by the path `nested_key`."""
    for item in updates:
        *parents, last = _key_path(item)
        node = target
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = _decode(item.value_json)
    for item in removes:
        *parents, last = _key_path(item)
        node = target
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)


def _key_path(item) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _decode(value_json: str):
    try:
        return json.loads(value_json)  # also takes the NaN and Infinity that wandb writes for non-finite floats
    except ValueError:
        return value_json


def wandb_logged_in() -> bool:
    """Whether this machine has W&B credentials (an API key in the environment or ~/.netrc): runs and dashboards go
    online only then (or with WANDB_MODE=online)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False
