"""Sweeps: the named sweep files (sweeps/*.yaml) and the Hydra callback that guards and sums up a multirun.

A sweep is a Hydra multirun: `alexlab -m dropout=on,off depth=5,3`, or a named sweep file run with
`alexlab sweep NAME [overrides]`. Each job writes its own metrics.json (train.py); a failed job is recorded there
and the sweep goes on. At the end, SweepSummary counts the runs by status, names the failures and writes the
report (alexlab.report) into the sweep directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from alexlab.errors import BadFile, DirectoryTaken, NotFound, SweepFailed
from alexlab.stats import Looks

log = logging.getLogger("alexlab")
SWEEPS_PACKAGE = "alexlab.sweeps"
# Keys of a sweep file that say how long a sweep goes on (how many seed rounds: hydra_plugins/alexlab_seed_rounds),
# not what a run is: left out of a run's identity and of the comparison that lets a sweep dir be resumed, so that
# `seeds=3` can later go on as `seeds=5` or `seeds=auto` in the same directory.
SWEEP_CONTROLS = ("seeds", "min_seeds", "max_seeds", "time_budget_h")


@dataclass(frozen=True)
class Design:
    """How a seed rounds sweep decides its claims (hydra.sweeper in its multirun.yaml), so that `alexlab report` on
    its directory later reads the runs as the sweep's stopping rule did."""

    looks: Looks = Looks()  # seed rounds after which it may have stopped on its verdicts (seeds=auto), else one
    margin: float | None = None  # the report options its verdicts used; None: the report's defaults
    ratio_margin: float | None = None
    threshold: float | list[float] | None = None  # or several: the speed claims read at each
    baseline: str | None = None  # KEY=VALUE[,...] of the row the others are compared with


def sweep_design(multirun_yaml: Path) -> Design:
    """The Design of the sweep that saved `multirun_yaml`: for seeds=auto (hydra_plugins/alexlab_seed_rounds), a
    look after each round from min_seeds to max_seeds; a sweep of fixed seeds looks once. Any other sweep, or a file
    that cannot be read, has the default Design; a value that cannot be read (an unresolvable ${seeds}) its default,
    the others kept."""
    try:
        sweeper = OmegaConf.select(OmegaConf.load(multirun_yaml), "hydra.sweeper", default=None)
    except UNREADABLE:
        return Design()
    if sweeper is None or not str(sweeper.get("_target_", "")).endswith("SeedRoundsSweeper"):
        return Design()
    auto = _read(lambda: str(sweeper.seeds) == "auto")
    span = _read(lambda: (int(sweeper.min_seeds), int(sweeper.max_seeds))) if auto else None
    looks = Looks(*span) if span and 1 <= span[0] <= span[1] else Looks()
    options = {key: _read(lambda key=key: float(sweeper[key])) for key in ("margin", "ratio_margin")}
    threshold = _read(lambda: OmegaConf.to_container(sweeper, resolve=True).get("threshold"))
    baseline = _read(lambda: sweeper.get("baseline"))
    return Design(looks, **options, threshold=threshold if isinstance(threshold, (int, float, list)) else None,
                  baseline=str(baseline) if baseline else None)  # fmt: skip


UNREADABLE = (OSError, ValueError, TypeError, yaml.YAMLError, OmegaConfBaseException)


def _read(value):
    """value(), or None where it is unset or cannot be read."""
    try:
        return value()
    except UNREADABLE:
        return None


def is_sweep_control(override: str) -> bool:
    return override.partition("=")[0].lstrip("+~") in SWEEP_CONTROLS


def named_sweeps() -> dict[str, str]:
    """The sweeps shipped with alexlab: name -> the first line of the file's leading comment."""
    sweeps = {}
    for entry in sorted(resources.files(SWEEPS_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = next((line for line in entry.read_text().splitlines() if line.startswith("#")), "#")
            sweeps[entry.name.removesuffix(".yaml")] = first.lstrip("# ").strip()
    return sweeps


def sweep_file(name: str) -> Path:
    """The file of a named sweep (`paper_ablations`) or of a sweep file of the user's own (`my/sweep.yaml`)."""
    path = Path(name).expanduser()
    if path.suffix == ".yaml":
        if not path.is_file():
            raise NotFound(f"sweep file not found: {path}")
        check_yaml(path)
        return path.resolve()
    packaged = Path(str(resources.files(SWEEPS_PACKAGE).joinpath(f"{name}.yaml")))
    if not packaged.is_file():
        raise NotFound(f"no sweep named {name!r}; choose one of: {', '.join(named_sweeps())} (or a path to a .yaml)")
    return packaged


# Hydra's flags that take a value: their values are not overrides.
FLAGS_WITH_VALUE = {
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "-c",
    "--cfg",
    "-p",
    "--package",
    "--experimental-rerun",
}


def check_yaml(path: Path) -> None:
    """A sweep file that is not YAML (or not a mapping) is refused in one line naming the file and the place."""
    from alexlab.cli import first_line

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise BadFile(f"sweep file {path} is not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise BadFile(f"sweep file {path} holds a YAML {type(data).__name__}, not a mapping of config keys")


def check_sweep_dir(argv: list[str], config_name: str, master: DictConfig | None = None) -> str | None:
    """Before a multirun into an existing sweep directory (hydra.sweep.dir=DIR): the same sweep there resumes
    (finished runs are skipped; returns DIR); another sweep is refused before Hydra writes anything into DIR, and so
    is the same sweep with its axes in another order, which would put other configurations into the numbered job
    directories (`planned_jobs`: what Hydra will write where, against what each job directory holds)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from alexlab.record import held_identity, identity

    words = [w for i, w in enumerate(argv) if not w.startswith("-") and (i == 0 or argv[i - 1] not in FLAGS_WITH_VALUE)]
    overrides = OverridesParser.create().parse_overrides(words)
    sweep_dir = next((o.value() for o in overrides if o.key_or_group == "hydra.sweep.dir"), None)
    if sweep_dir is None or not (Path(sweep_dir) / "multirun.yaml").is_file():
        return None
    previous = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
    before = OmegaConf.select(previous, "hydra.overrides.task", default=None) or []
    before = sorted(identity(before))
    now = sorted(identity([o.input_line for o in overrides if not o.is_hydra_override()]))  # masked as stored
    before_name = OmegaConf.select(previous, "hydra.job.config_name", default=None)
    if before != now or before_name != config_name:
        raise DirectoryTaken(
            f"{sweep_dir} holds another sweep ({before_name}: {' '.join(before) or 'no overrides'}); "
            "to resume it, repeat its overrides exactly; for a new sweep, leave out hydra.sweep.dir"
        )
    jobs = planned_jobs(master, Path(sweep_dir)) if master is not None else None
    for name, planned in (jobs or {}).items():
        held = held_identity(Path(sweep_dir) / name)
        if held is not None and sorted(held) != sorted(identity(planned)):
            order = " ".join(OmegaConf.select(previous, "hydra.overrides.task", default=None) or [])
            raise DirectoryTaken(
                f"{sweep_dir}/{name} holds the job {' '.join(held)}, but this command would run "
                f"{' '.join(identity(planned))} there: give the sweep's overrides in their first order ({order})"
            )
    return sweep_dir


def planned_jobs(master: DictConfig, sweep_dir: Path) -> dict[str, list[str]] | None:
    """Job directory name -> the overrides Hydra will give that job, for the sweepers whose jobs are known in
    advance (the basic sweeper's grid, and the seed rounds' grid round after round) with Hydra's numbered job
    directories; None for others (Optuna's trials are numbered by its study, which resumes on its own)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = OmegaConf.select(master, "hydra.sweeper._target_", default="")
    subdir = OmegaConf.to_container(master.hydra.sweep, resolve=False).get("subdir")
    if subdir != "${hydra.job.num}" or not sweeper.endswith(("BasicSweeper", "SeedRoundsSweeper")):
        return None
    params = master.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=True) if params else {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(master.hydra.overrides.task)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    grid = [job for batch in batches for job in batch]
    if sweeper.endswith("SeedRoundsSweeper"):
        seed_key = OmegaConf.select(master, "hydra.sweeper.seed_key", default="seed")
        numbered = [int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit()]
        rounds = (max(numbered, default=0) // max(len(grid), 1)) + 1
        grid = [[*job, f"{seed_key}={seed}"] for seed in range(rounds) for job in grid]
    return {str(number): job for number, job in enumerate(grid)}


class SweepSummary(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): after a multirun, logs what ran and what failed, writes
    sweep.json and the report into the sweep directory. Hydra turns a callback's exceptions into warnings, so the
    verdict (did every run fail?) is left in `last` for the command line to act on."""

    last: dict | None = None

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        # Workers of one shared study may finish together in one sweep dir: one at a time reads the jobs and writes
        # sweep.json and the report, so no file is ever written by two at once, and the last one sees every job.
        with open(sweep_dir / ".summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._summarise(sweep_dir)

    def _summarise(self, sweep_dir: Path) -> None:
        from alexlab.report import find_job_dirs, read_run  # the report's own reading of job directories

        runs = [read_run(job_dir, sweep_dir) for job_dir in find_job_dirs(sweep_dir)]
        counts = dict(Counter(run.status for run in runs))
        failures = [
            {"run": run.job, "status": run.status, "error": run.error}
            for run in runs
            if run.status not in ("finished", "pruned")
        ]
        summary = {"sweep_dir": str(sweep_dir), "runs": len(runs), "by_status": counts, "not_finished": failures}
        (sweep_dir / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
        SweepSummary.last = summary

        log.info("sweep %s: %d runs (%s)", sweep_dir, len(runs), ", ".join(f"{n} {s}" for s, n in counts.items()))
        for failure in failures:
            log.warning("  run %s %s: %s", failure["run"], failure["status"], failure["error"])
        if counts.get("finished"):
            try:
                from alexlab.report import main as report

                report([str(sweep_dir)])  # reads the job directories again: it is also a command of its own
            except Exception as exc:  # the runs are done and kept; only the table is missing
                log.warning("no report (%s: %s); try: alexlab report %s", type(exc).__name__, exc, sweep_dir)


def raise_if_all_failed() -> None:
    """After a multirun: a sweep in which no run finished is a failed command (exit 1), with the first reason."""
    summary = SweepSummary.last
    if summary and summary["runs"] and not summary["by_status"].get("finished"):
        first = summary["not_finished"][0] if summary["not_finished"] else {"run": "?", "error": "pruned"}
        raise SweepFailed(
            f"no run of the sweep finished ({summary['runs']} runs); run {first['run']}: {first['error']}"
        )
