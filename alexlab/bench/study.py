"""The bench's study section (`bench.study=DIR`): where the runs of a real study spent their wall time, from the phases
each run's record keeps (callbacks.PhaseTimes: setup, train, validate, clean, checkpoint, test), beside the training
step this bench measures. A study's cost is what its runs do besides the steps the verdicts need: the validation
passes, the test, start-up; the train phase per step against the bench's own step says what the training loop adds
to the step itself (loading and augmenting the data, logging, the metrics)."""

from __future__ import annotations

from pathlib import Path

from alexlab import record
from alexlab.errors import BadFile, BadValue
from alexlab.report.runs import find_job_dirs

PHASE_ORDER = ("setup", "train", "validate", "clean", "checkpoint", "test")


def study_cost(sweep_dir: Path, step_s: float) -> dict:
    """The phases of every finished run under `sweep_dir` (totals, shares of the summed wall time, per run) and the
    train phase's seconds per optimiser step against `step_s`, the bench's Trainer step on the config it ran."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise BadValue(f"bench.study={sweep_dir}: not a directory; give a study's sweep directory")
    runs = []
    for job_dir in find_job_dirs(sweep_dir):
        try:
            ended = record.read(job_dir)
        except BadFile:
            continue
        if ended is not None and ended.finished and ended.phases and ended.wall_time_s:
            runs.append(ended)
    if not runs:
        raise BadValue(f"bench.study={sweep_dir}: no finished run whose record has its phase times")
    wall = sum(run.wall_time_s for run in runs)
    found = {name for run in runs for name in run.phases}
    names = [name for name in PHASE_ORDER if name in found] + sorted(found - set(PHASE_ORDER))
    totals = {name: sum(float(run.phases.get(name, 0.0)) for run in runs) for name in names}
    totals["other"] = max(wall - sum(totals.values()), 0.0)  # between the phases: imports, the record, teardown
    steps = sum(last_step(run) for run in runs)
    train_per_step = totals.get("train", 0.0) / steps if steps else None
    return {
        "dir": str(sweep_dir),
        "runs": len(runs),
        "wall_s": wall,
        "per_run_s": wall / len(runs),
        "phases_s": totals,
        "shares": {name: value / wall for name, value in totals.items()},
        "steps": steps,
        "train_s_per_step": train_per_step,
        "bench_step_s": step_s,
        "train_step_over_bench": train_per_step / step_s if train_per_step and step_s else None,
    }


def last_step(run: record.Record) -> int:
    """The optimiser steps a run trained: the step of its training curve's last row (0 without a curve)."""
    steps = [row.get("step") for row in run.curve if isinstance(row.get("step"), (int, float))]
    steps += [row.get("step") for row in run.clean_curve if isinstance(row.get("step"), (int, float))]
    return int(max(steps, default=0))


def study_rows(study: dict | None) -> list[tuple[str, str, str]]:
    """The study section's rows of the bench's table."""
    if not study:
        return []
    hours, per_run = study["wall_s"] / 3600, study["per_run_s"]
    rows = [("study", f"{study['runs']} finished runs, wall time", f"{hours:.2f} h ({per_run:.0f} s a run)")]
    for name, seconds in study["phases_s"].items():
        share, each = 100 * study["shares"][name], seconds / study["runs"]
        rows.append(("study", f"  {name}", f"{share:.1f}%  ({each:.1f} s a run)"))
    if study["train_step_over_bench"] is not None:
        rows.append(("study", "train phase per step / bench Trainer step",
                     f"{study['train_step_over_bench']:.2f}x  ({1000 * study['train_s_per_step']:.1f} ms against "
                     f"{1000 * study['bench_step_s']:.1f} ms)"))  # fmt: skip
    return rows
