"""The run record (metrics.json) and the run directory: the one owner of both.

A run directory holds one run: one task (train, or test of a checkpoint) of one configuration. Hydra writes .hydra/
and alexlab.log into it when the job starts, Lightning the checkpoints, the loggers their files, and alexlab the
run's record (files.RECORD). Whatever reads or writes a record, or decides what a directory may hold, goes through
this module: training (start, end, resume, skipping a job that already finished), the sweep's guard and summary,
the Optuna sweeper, the report and the dashboard.

- The record is a `Record`; `read` gives it back from its file, or refuses in one line a file that is not one.
- `write` is atomic: a temporary file in the same directory, flushed to the disk, renamed over the old record. A
  crash, a signal or a full disk never leaves half a record.
- `ending` classifies how a run ended (an exception or a signal) into a `Status`, in one place.
- `check_claim` says, before anything is written, whether a directory may take a run: it may when it is new or
  empty, or when it holds this same run (to resume it, or to skip it when it finished). `claim` does that check
  again inside the job, under a lock, so that two processes never run one job at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from alexlab import files, metrics
from alexlab.errors import BadFile, CannotWrite, DirectoryBusy, DirectoryTaken, Diverged
from alexlab.files import HYDRA_DIR, LOCK, MULTIRUN, RECORD, SWEEP_SUMMARY

__all__ = [
    "HYDRA_DIR",
    "LOCK",
    "MULTIRUN",
    "RECORD",
    "SWEEP_SUMMARY",
]  # the directories' file names, from alexlab.files

log = logging.getLogger("alexlab")
TASKS = ("train", "test")
UMASK = os.umask(0o022)
os.umask(UMASK)  # read back (os.umask sets it and returns the old one), as it was


# How a reader of a sweep finds a job directory, besides the Status its record gives (the report lists these with the
# runs that did not finish): no record yet, a record that is not one, a record that names no configuration, a copy
# of another run, no W&B run file (read with --source wandb)
NO_RECORD, UNREADABLE, UNIDENTIFIED, COPY, NO_WANDB = f"no {RECORD}", "unreadable", "unidentified", "copy", "no W&B run"


class Status(str, Enum):
    RUNNING = "running"  # started; also a run killed without warning (kill -9, power loss): nobody wrote its end
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # a signal (SIGTERM, Ctrl-C, a pre-emption) stopped it; its checkpoint resumes it
    FAILED = "failed"  # an error; with a checkpoint, resume=true goes on from it once the cause is fixed
    DIVERGED = "diverged"  # the training loss became NaN or infinite
    PRUNED = "pruned"  # an Optuna pruner stopped it


def _numbers(value, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not all(_is_number(v) for v in value.values()):
        raise TypeError(f"{where} must map names to numbers")
    return dict(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or value is None


@dataclass
class Record:
    """What a run record holds. The errors are fractions (0.0816, not 8.16%)."""

    status: Status
    task: str = "train"
    overrides: list[str] = field(default_factory=list)  # the run's identity (`identity`): its overrides, masked
    seed: int | None = None
    switches: dict[str, str | None] = field(default_factory=dict)  # every config group's choice (config_groups)
    started: float | None = None  # Unix time
    objective: str | None = None  # the metric a sweep optimises (cfg.objective)
    error: str | None = None  # one line: why it did not finish
    traceback: str | None = None
    final: dict[str, float] = field(default_factory=dict)  # the last epoch's metrics and the test's
    best: dict[str, float] = field(default_factory=dict)  # the epoch with the lowest objective: val/*, its epoch
    history: list[dict] = field(default_factory=list)  # one row per epoch (callbacks.EpochHistory)
    curve: list[dict] = field(default_factory=list)  # the training curve (callbacks.TrainingCurve)
    clean_curve: list[dict] = field(default_factory=list)  # the clean training error (callbacks.CleanTrainingError)
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    resume_from: str | None = None  # the checkpoint an interrupted run goes on from
    parameters: int | None = None
    macs: int | None = None  # multiply-accumulates per image of the network (alexlab.info.network_size)
    git: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    wall_time_s: float | None = None
    phases: dict = field(default_factory=dict)  # seconds by phase: setup, train, validate, ... (callbacks.PhaseTimes)
    # the job of the same sweep directory whose training this one is (alexlab.twins): its epochs and checkpoint
    trained_in: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == Status.FINISHED

    def value(self, objective: str | None = None) -> float:
        """The objective (this record's own when not named): at the best epoch, else as last measured; NaN if
        never measured."""
        name = objective or self.objective or metrics.VAL_TOP1
        value = self.best.get(name, self.final.get(name))
        return float(value) if value is not None else math.nan

    def same_run(self, overrides: list[str], task: str) -> bool:
        return self.task == task and sorted(self.overrides) == sorted(identity(overrides))

    def to_dict(self) -> dict:
        return asdict(self) | {"status": self.status.value}

    @classmethod
    def from_dict(cls, data, where: str = RECORD) -> Record:
        """A record from its file's dict; a dict that is not one raises BadFile naming what is wrong."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"it holds a JSON {type(data).__name__}, not an object")
            known = {name: data[name] for name in cls.__dataclass_fields__ if name in data and data[name] is not None}
            if "status" not in known:
                raise TypeError("it has no status")
            known["status"] = Status(known["status"])
            record = cls(**known)
            if record.task not in TASKS:
                raise TypeError(f"task {record.task!r} is not one of {', '.join(TASKS)}")
            if not isinstance(record.overrides, list) or not all(isinstance(o, str) for o in record.overrides):
                raise TypeError("overrides must be a list of strings")
            if not isinstance(record.switches, dict):
                raise TypeError("switches must be an object")
            record.final, record.best = _numbers(record.final, "final"), _numbers(record.best, "best")
            for name in ("history", "curve", "clean_curve"):
                rows = getattr(record, name)
                if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                    raise TypeError(f"{name} must be a list of objects")
            if record.seed is not None and not isinstance(record.seed, int):
                raise TypeError(f"seed {record.seed!r} is not an integer")
        except (TypeError, ValueError) as exc:
            raise BadFile(f"{where} is not an alexlab run record: {exc}") from exc
        return record


def read(run_dir: Path) -> Record | None:
    """The record in `run_dir`, None when there is none yet; BadFile when its file is not a record."""
    path = Path(run_dir) / RECORD
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadFile(f"{path} cannot be read ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadFile(f"{path} is not an alexlab run record: not JSON ({exc})") from exc
    return Record.from_dict(data, str(path))


def skipped_here(run_dir) -> bool:
    """Whether the job of `run_dir` will not run in this process: the directory holds a finished run (a resumed
    sweep skips it) or another process is running its job now. Asked before the job starts, by what Hydra writes
    into the directory first (configs_subdir, job_log), so that a skipped job's files stay as its run left them."""
    try:
        held = read(Path(run_dir))
    except BadFile:  # not a record: the job's own claim refuses the directory, with its reason
        return False
    if held is not None and held.finished:
        return True
    return running_elsewhere(run_dir)


def configs_subdir(run_dir: str) -> str | None:
    """Where Hydra saves a job's configs (hydra.output_subdir, conf/config.yaml): `.hydra`, or nowhere (None) for a
    job skipped here. Hydra saves config.yaml, hydra.yaml and overrides.yaml before the job starts, also for a job
    that a resumed sweep (or a second worker) then skips: they would say how the later command was typed (its
    working directory, its sweep controls such as max_seeds=) instead of how the job ran."""
    return None if skipped_here(run_dir) else files.HYDRA_DIR


def job_log(run_dir: str, name: str) -> str:
    """The job's log file (hydra.job_logging's file handler, conf/config.yaml): `<run_dir>/<name>.log`, or the null
    device for a job skipped here, whose log is its run's ("already finished ...: not run again" goes to the
    terminal and the sweep's log instead of being added to it)."""
    return os.devnull if skipped_here(run_dir) else str(Path(run_dir) / f"{name}.log")


def running_elsewhere(run_dir) -> bool:
    """Whether a process holds `run_dir` now (claim's lock): its job is running there. Asks with a shared lock that it
    drops at once, and creates nothing."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:  # no lock file: no job ever claimed the directory
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the shared lock
    return False


def write(run_dir: Path, record: Record) -> None:
    """The record file, atomically, secrets masked (alexlab.masking)."""
    from alexlab.masking import mask

    text = json.dumps(mask(record.to_dict()), indent=2, default=str) + "\n"
    atomic_write(Path(run_dir) / RECORD, lambda f: f.write(text.encode()))


def atomic_write(path: Path, write_to) -> None:
    """Write `path` through `write_to(binary file)` into a temporary file beside it, flush it to the disk and rename
    it over `path`: readers see the old file or the new one, never a part. A write that fails (a full disk, a
    read-only directory) removes its temporary file, leaves the old file as it was and raises CannotWrite."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp's file is private (0600); the record is as any file the user writes
        with os.fdopen(fd, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise cannot_write(exc, path) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def cannot_write(exc: OSError, path: Path) -> CannotWrite:
    """One line for a failed write: which file, why, and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space, or set paths.output_root to another disk"
    else:
        hint = "set paths.output_root (or hydra.run.dir / hydra.sweep.dir) to a directory you can write to"
    return CannotWrite(exc.errno, f"cannot write {path} ({reason}): {hint}")


def ending(exc: BaseException) -> tuple[Status, str]:
    """How a run that raised `exc` ended, and why in one line."""
    import sys

    from alexlab.signals import Interrupted

    optuna = sys.modules.get("optuna")  # a pruned trial comes from Optuna, so Optuna is imported then
    lightning = sys.modules.get("lightning.pytorch.utilities.exceptions")
    interrupts = (KeyboardInterrupt, SystemExit, Interrupted)
    if lightning is not None:
        interrupts += (lightning.SIGTERMException,)
    if isinstance(exc, interrupts):
        status = Status.INTERRUPTED
    elif optuna is not None and isinstance(exc, optuna.TrialPruned):
        status = Status.PRUNED
    elif isinstance(exc, Diverged):
        status = Status.DIVERGED
    else:
        status = Status.FAILED
    cause = exc
    hydra_errors = sys.modules.get("hydra.errors")
    while hydra_errors and isinstance(cause, hydra_errors.InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__  # Hydra's wrapper says only which target failed; the cause says why
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    error = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    if isinstance(exc, interrupts) and not lines:
        error = {SystemExit: "SystemExit", KeyboardInterrupt: "Ctrl-C (KeyboardInterrupt)"}.get(type(exc), error)
    return status, error


# --- a run's identity -------------------------------------------------------------------------------------------------

# Overrides that say how to start a run, not what it is: a resumed run has the same identity without them.
START_KEYS = ("resume",)
# Keys of a sweep file that say how long a sweep goes on (how many seed rounds: hydra_plugins/alexlab_seed_rounds),
# not what a run is: left out of a run's identity and of the comparison that lets a sweep dir be resumed, so that
# `seeds=3` can later go on as `seeds=5` or `seeds=auto` in the same directory.
SWEEP_CONTROLS = ("seeds", "min_seeds", "max_seeds", "time_budget_h")


def is_sweep_control(override: str) -> bool:
    return override.partition("=")[0].lstrip("+~") in SWEEP_CONTROLS


def seed_round_job(job: list[str], seed_key: str, first_seed: int, round_number: int) -> list[str]:
    """A configuration's job in round r of a seed-rounds sweep: its overrides and seed first_seed + r. The one rule
    both the sweeper (hydra_plugins.alexlab_seed_rounds), which plans the rounds, and a resumed sweep's check of its
    job directories (alexlab.overrides.planned_jobs) follow."""
    return [*job, f"{seed_key}={first_seed + round_number}"]


def as_typed(overrides) -> list[str]:
    """Hydra's hydra.overrides.task as the user typed it and as Hydra saved it (.hydra/overrides.yaml, multirun.yaml):
    interpolations unresolved. Read element by element from the config, `+note=${oc.env:X}` would be resolved (two
    spellings of one command, and a secret's value where only its reference was typed) or fail outside the job
    (`${hydra:...}`)."""
    from omegaconf import ListConfig, OmegaConf

    if isinstance(overrides, ListConfig):
        overrides = OmegaConf.to_container(overrides, resolve=False)
    return [str(o) for o in overrides or []]


def identity(overrides) -> list[str]:
    """A run's identity: its task overrides (Hydra's hydra.overrides.task) without the ones that only say how to
    start it (resume=true, ckpt_path=last) or how long its sweep goes on (alexlab.sweep.SWEEP_CONTROLS), secrets
    masked as they are written."""
    from alexlab.masking import mask_text

    def starts(override: str) -> bool:
        key, _, value = override.partition("=")
        return key.lstrip("+~") in START_KEYS or (key.lstrip("+~") == "ckpt_path" and value == "last")

    return [mask_text(o) for o in as_typed(overrides) if not starts(o) and not is_sweep_control(o)]


def hydra_overrides(run_dir: Path) -> list[str] | None:
    """The overrides Hydra saved when a job started in `run_dir` (.hydra/overrides.yaml), None without them."""
    import yaml

    try:
        overrides = yaml.safe_load((Path(run_dir) / HYDRA_DIR / "overrides.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def read_mapping(path: Path) -> dict:
    """A YAML (or JSON) file that holds a mapping (a saved config, multirun.yaml, a study's spec), or {} for one that
    is missing, cannot be read or decoded, or holds something else (a list, a number: a damaged file says nothing)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: bytes that are not UTF-8
        return {}
    return data if isinstance(data, dict) else {}


def saved_config(run_dir: Path) -> dict:
    """The composed config Hydra saved when the job started (.hydra/config.yaml), as written (interpolations
    unresolved); {} without one."""
    return read_mapping(Path(run_dir) / HYDRA_DIR / "config.yaml")


def saved_choices(run_dir: Path) -> dict:
    """The config-group choices Hydra saved when the job started (.hydra/hydra.yaml: hydra.runtime.choices); {}."""
    choices = read_mapping(Path(run_dir) / HYDRA_DIR / "hydra.yaml")
    for key in ("hydra", "runtime", "choices"):
        choices = choices.get(key) if isinstance(choices, dict) else None
    return choices if isinstance(choices, dict) else {}


def held_identity(run_dir: Path) -> list[str] | None:
    """The identity of the job a directory holds: from its record, else from what Hydra saved when the job
    started (a job killed before it wrote one, or a record that is not one); None for a directory without a job."""
    try:
        held = read(run_dir)
    except BadFile:
        held = None
    if held is not None:
        return held.overrides
    saved = hydra_overrides(run_dir)
    return identity(saved) if saved is not None else None


def ended_outside(run_dir: Path, overrides: list[str], error: str) -> Record:
    """Record a job that its cluster ended without a result (alexlab.slurm: cancelled, a node failure, a requeue that
    never started) as `failed` with the cluster's reason, keeping what its own record says (its epochs, its checkpoint
    to resume from): the run's last record said `running` or `interrupted`, which nobody would correct. A record
    that says `finished` is left as it is: the run's own word is the newer. Returns the record the directory holds."""
    run_dir = Path(run_dir)
    try:
        held = read(run_dir)
    except BadFile:
        held = None
    if held is not None and held.finished:
        return held
    ended = held or Record(status=Status.FAILED, overrides=identity(overrides))
    ended.status, ended.error = Status.FAILED, error
    if ended.resume_from is None:
        found = files.resume_checkpoint(run_dir)
        ended.resume_from = str(found) if found else None
    write(run_dir, ended)
    return ended


# --- claiming a directory ---------------------------------------------------------------------------------------------


def check_claim(run_dir: Path, overrides: list[str], task: str) -> Record | None:
    """May `run_dir` take this run (`overrides`: its task overrides; `task`: train or test)? Returns the record of
    this same run when the directory already holds it (to resume or skip), else None (a new or empty directory).
    Raises DirectoryTaken for a directory that holds something else: another run, a run of the other task (a test
    never writes into its training's directory), or a sweep. Writes nothing."""
    run_dir = Path(run_dir)
    if (run_dir / MULTIRUN).exists():
        raise DirectoryTaken(f"{run_dir} is a sweep directory; a single run needs a directory of its own")
    try:
        record = read(run_dir)
    except BadFile as exc:
        raise DirectoryTaken(f"{run_dir} holds a {RECORD} that is not a run record; run in a new directory") from exc
    if record is not None:
        if record.same_run(overrides, task):
            return record
        held = " ".join(record.overrides) or "no overrides"
        if record.task != task:
            raise DirectoryTaken(
                f"{run_dir} holds a {record.task} run ({held}); alexlab {task} writes into a directory of its own: "
                "leave out hydra.run.dir"
            )
        raise DirectoryTaken(
            f"{run_dir} already holds a {task} run with other overrides ({held}); run in a new directory (leave out "
            "hydra.run.dir / hydra.sweep.dir)"
        )
    saved = hydra_overrides(run_dir)  # a job that started there and was killed before it wrote its record
    if saved is not None and sorted(identity(saved)) != sorted(identity(overrides)):
        raise DirectoryTaken(
            f"{run_dir} holds a job started with other overrides ({' '.join(identity(saved)) or 'none'}); "
            "run in a new directory (leave out hydra.run.dir / hydra.sweep.dir)"
        )
    return None


@contextlib.contextmanager
def claim(run_dir: Path, overrides: list[str], task: str):
    """Hold `run_dir` for this process while the job runs (an exclusive lock on its .alexlab.lock), after
    check_claim. Yields check_claim's record. DirectoryBusy when another process holds it."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 (closed by the with below, after the error handling)
    except OSError as exc:
        raise cannot_write(exc, path) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise DirectoryBusy(
                f"{run_dir} is in use: another alexlab process (pid {holder}) is running this job now"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield check_claim(run_dir, overrides, task)


def git_state() -> dict:
    """The commit of the alexlab source tree and whether it had uncommitted changes (None outside a checkout)."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}
