"""Sweeps: the named sweep files (sweeps/*.yaml) and the Hydra callback that guards and sums up a multirun.

A sweep is a Hydra multirun: `alexlab -m dropout=on,off depth=5,3`, or a named sweep file run with
`alexlab sweep NAME [overrides]`. Each job writes its own run record (job.py); a failed job is recorded there
and the sweep goes on. At the end, SweepSummary counts the runs by status, names the failures and writes the
report (alexlab.report) into the sweep directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections import Counter
from importlib import resources
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from alexlab.errors import BadFile, NotFound, SweepFailed, first_line
from alexlab.record import SWEEP_SUMMARY

log = logging.getLogger("alexlab")
SWEEPS_PACKAGE = "alexlab.sweeps"


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


def check_yaml(path: Path) -> None:
    """A sweep file that is not YAML (or not a mapping) is refused in one line naming the file and the place."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise BadFile(f"sweep file {path} is not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise BadFile(f"sweep file {path} holds a YAML {type(data).__name__}, not a mapping of config keys")


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
        (sweep_dir / SWEEP_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
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
