"""Reading a sweep's runs: each job directory's run record (or its offline W&B run), identified by its switches and
overrides, with the numbers the report compares, its training curve and the steps to a training error."""

from __future__ import annotations

import math
from pathlib import Path

from alexlab import metrics, record
from alexlab.errors import BadFile, BadValue
from alexlab.report.model import CENTRE, GAP_MEASURES, METRICS, TEN_CROP, WITHOUT_METRICS, Run

FINISHED = record.Status.FINISHED.value


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    def is_job(path: Path) -> bool:
        return (path / record.RECORD).exists() or (path / record.HYDRA_DIR).is_dir()

    def children(path: Path) -> list[Path]:
        return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]

    jobs = []
    for child in children(sweep_dir):
        jobs.extend([child] if is_job(child) else [p for p in children(child) if is_job(p)])
    # job numbers in numeric order (2 before 10), other names after them
    key = lambda p: [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.relative_to(sweep_dir).parts]
    return sorted(jobs, key=key)


def read_runs(sweep_dir: Path, source: str = "runs") -> list[Run]:
    """Every job of the sweep, in job order, read from its run record (or its W&B run file), copies marked."""
    read = read_wandb_run if source == "wandb" else read_run
    runs = [read(job_dir, sweep_dir) for job_dir in find_job_dirs(sweep_dir)]
    mark_copies(runs)
    return runs


def read_run(job_dir: Path, sweep_dir: Path) -> Run:
    """A job's numbers from its run record (alexlab.record); a job without one (still running, killed, or a record
    that is not one) is identified from what Hydra wrote when it started."""
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=record.NO_RECORD, config=record.saved_config(job_dir))
    try:
        ended = record.read(job_dir)
    except BadFile as exc:
        ended = None
        run.status, run.error = record.UNREADABLE, str(exc)
    if ended is None:
        run.error = run.error or "still running, or killed before it wrote one"
        identify_from_hydra(run, job_dir)
        return run
    run.status, run.error = ended.status.value, ended.error
    run.switches = {k: none_or_str(v) for k, v in ended.switches.items()}
    run.overrides, run.seed, run.started = list(ended.overrides), ended.seed, ended.started
    if not run.switches:  # every record alexlab writes names its switches; this one does not (written by hand?)
        identify_from_hydra(run, job_dir)
        if not run.switches and run.status == FINISHED:  # nothing says which configuration it ran: not counted
            run.status, run.error = record.UNIDENTIFIED, "its record names no switches and it has no .hydra/ files"
    run.wall_time_s = ended.wall_time_s if finite(ended.wall_time_s) else None
    run.parameters, run.macs = ended.parameters, ended.macs
    for key, (section, _) in METRICS.items():
        value = getattr(ended, section).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    one_view(run)
    gaps(run, ended.final)
    for entry in ended.history:
        if finite(entry.get(metrics.VAL_TOP1)) and finite(entry.get("epoch")):
            run.curve.append((int(entry["epoch"]), 100.0 * entry[metrics.VAL_TOP1]))
    strengths = [v for k, v in ended.final.items() if k.startswith("lrn/") and finite(v)]
    run.lrn_strength = max(strengths) if strengths else None
    run.clean_curve = bool(ended.clean_curve)
    if run.clean_curve:  # measured at exactly its step's weights: no bin to centre
        clean = [(entry.get("step"), entry.get(CLEAN_ERROR)) for entry in ended.clean_curve]
        run.train_curve = [(float(step), 100.0 * error) for step, error in clean if finite(step) and finite(error)]
    else:
        run.train_curve = training_curve([(entry.get("step"), entry.get(metrics.TRAIN_TOP1)) for entry in ended.curve])
    return run


CLEAN_ERROR = metrics.metric(metrics.TRAIN_CLEAN, "top1_err")


def one_view(run: Run) -> None:
    """A record from before every run tested both views: its test error is the view its test_views names."""
    view = {"centre": CENTRE, "ten_crop": TEN_CROP}.get(run.switches.get("test_views"))
    if view is not None and view not in run.values and metrics.TEST_TOP1 in run.values:
        run.values[view] = run.values[metrics.TEST_TOP1]


def gaps(run: Run, final: dict) -> None:
    """The run's gaps (module docstring) from its last epoch's metrics (fractions; the loss gap as it is)."""
    for measure, (quantity, scale) in GAP_MEASURES.items():
        val, train = final.get(f"val/{quantity}"), final.get(f"train_eval/{quantity}")
        if finite(val) and finite(train):
            run.values[measure] = scale * (val - train)


def identify_from_hydra(run: Run, job_dir: Path) -> None:
    """The configuration and seed of a job whose record does not say them, from what Hydra wrote when it started
    (.hydra/): its config-group choices are the switches. What the record already says is kept."""
    run.from_hydra = True
    choices = record.saved_choices(job_dir)
    run.switches = {k: none_or_str(v) for k, v in choices.items() if not str(k).startswith("hydra/")}
    run.overrides = run.overrides or record.identity(record.hydra_overrides(job_dir) or [])
    if run.seed is None:
        seeds = [o.partition("=")[2] for o in run.overrides if o.startswith("seed=")]
        seed = int(seeds[-1]) if seeds and seeds[-1].isdigit() else run.config.get("seed")
        run.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def mark_copies(runs: list[Run]) -> None:
    """A folder that holds two copies of one sweep (or of one run) would count each run twice: a run with the
    overrides, seed and start time of one read before it is a copy, listed with the unfinished runs, not counted."""
    seen: dict[tuple, str] = {}
    for run in runs:
        if run.started is None or run.status in WITHOUT_METRICS:
            continue
        key = (tuple(sorted(run.overrides)), run.seed, run.started)
        if key in seen:
            run.status = record.COPY
            run.error = f"a copy of {seen[key]} (the same overrides, seed and start time): counted once"
        else:
            seen[key] = run.job


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_wandb_run(job_dir: Path, sweep_dir: Path) -> Run:
    """A job's numbers from its W&B run file (alexlab.wandb_runs), chosen as the run record chooses them: val errors at
    the epoch of the lowest val top-1 error, test errors as logged, the gaps from the last epoch, the training curve
    from its curve/* rows. A job resumed after an interruption holds a W&B run per stint: they count as one
    (wandb_runs.job_run), every epoch with the stint that trained it last."""
    from alexlab import wandb_runs

    try:
        found = wandb_runs.find_runs(job_dir)
    except (BadValue, OSError) as exc:  # a file that is not a W&B run file, or cannot be read
        return without_wandb(job_dir, sweep_dir, record.UNREADABLE, str(exc))
    if not found:
        return without_wandb(job_dir, sweep_dir, record.NO_WANDB, "no run-*.wandb file in the job directory "
                             "(logger without wandb?)")  # fmt: skip
    wandb_run = wandb_runs.job_run(found)
    config, summary = wandb_run.config, wandb_run.summary
    status = summary.get("status") if isinstance(summary.get("status"), str) else None
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=status or wandb_run.state)
    run.error = none_or_str(summary.get("error"))
    if wandb_run.truncated and run.status != FINISHED:
        run.error = run.error or f"its W&B run file {wandb_run.path.name} ends in a cut or damaged record"
    run.switches = {k: none_or_str(v) for k, v in config.items() if k not in wandb_runs.CONFIG_KEYS}
    overrides = config.get(wandb_runs.OVERRIDES)
    run.overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    seed = config.get(wandb_runs.SEED)
    run.seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    saved = config.get(wandb_runs.CONFIG)
    run.config = saved if isinstance(saved, dict) else record.saved_config(job_dir)
    validations = [row for row in wandb_run.history if finite(row.get(metrics.VAL_TOP1))]
    best = min(validations, key=lambda row: row[metrics.VAL_TOP1]) if validations else {}
    for key, (section, _) in METRICS.items():
        value = (best if section == "best" else summary).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    one_view(run)
    last = validations[-1] if validations else {}
    gaps(run, last)
    strengths = [v for k, v in last.items() if str(k).startswith("lrn/") and finite(v)]
    run.lrn_strength = max(strengths) if strengths else None
    run.curve = [(int(row["epoch"]), 100.0 * row[metrics.VAL_TOP1]) for row in validations]
    clean = [(row.get("trainer/global_step"), row[metrics.curve(metrics.CLEAN_TOP1)]) for row in wandb_run.history
             if finite(row.get(metrics.curve(metrics.CLEAN_TOP1)))]  # fmt: skip
    run.clean_curve = bool(clean)
    if run.clean_curve:  # as read_run reads the record's clean_curve
        run.train_curve = [(float(step), 100.0 * error) for step, error in clean if finite(step)]
    else:  # the curve's rows: those that log it (others log the epochs' metrics)
        run.train_curve = training_curve(
            [(row.get("trainer/global_step"), row[metrics.curve(metrics.TRAIN_TOP1)]) for row in wandb_run.history
             if metrics.curve(metrics.TRAIN_TOP1) in row]
        )  # fmt: skip
    return run


def without_wandb(job_dir: Path, sweep_dir: Path, status: str, error: str) -> Run:
    """A job whose W&B run cannot be read: identified (from its record or .hydra/), none of its numbers taken."""
    run = read_run(job_dir, sweep_dir)
    run.values, run.curve, run.train_curve = {}, [], []
    run.status, run.error = status, error
    return run


def dig(data, *keys):
    """data[k1][k2]...: None where a level is missing or is not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def none_or_str(value) -> str | None:
    return None if value is None else str(value)


def settings_of(overrides: list[str], switches: dict) -> dict[str, str]:
    """The overrides that are neither switches (already in `switches`) nor `seed` nor `trial.*`."""
    settings = {}
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key not in switches and key != "seed" and not key.startswith(("trial.", "hydra.")):
            settings[key] = value.strip("'\"")
    return settings


def training_curve(rows: list[tuple]) -> list[tuple[float, float]]:
    """A run's training curve as the report reads it: (the step whose weights a row measured, its training top-1
    error in percent), from the logged rows (optimiser step, error as a fraction). Each row is placed at the middle
    of its bin (bin_centres) before a row without a finite error is left out, so that a gap moves no other row."""
    rows = [(float(step), error) for step, error in rows if finite(step)]
    return [(centre, 100.0 * error) for centre, error in bin_centres(rows) if finite(error)]


def bin_centres(curve: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The training curve's points at the steps they measured. A row logged at optimiser step s averages the batches
    since the previous row (at step p; 0 for the first), each of them run on the weights of the step before its
    own, so it measures the weights after (p + s - 1) / 2 steps on average (10 batches logged at step 10: 4.5).
    Placing it at s would add about half a bin to every run's steps, pulling each ratio of steps towards 1. (Never
    below 0: with gradient accumulation a first row can be logged before the first step.)"""
    centred, previous = [], 0
    for step, error in curve:
        centred.append((max((previous + step - 1) / 2, 0.0), error))
        previous = step
    return centred


def steps_to(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """Optimiser steps until the training curve first reaches `threshold` percent, interpolated linearly between
    its points; None (censored) if it never does, or if its first point is already there: the run got there at
    some step before it, which the curve cannot tell (taking the first point's step would make every such run
    equally fast, a ratio of 1 where the runs may differ sixfold)."""
    previous = None
    for step, error in curve:
        if error <= threshold:
            if previous is None:
                return None
            (s0, e0), (s1, e1) = previous, (step, error)
            steps = s0 + (s1 - s0) * (e0 - threshold) / (e0 - e1)
            return steps if steps > 0 else None  # a ratio needs steps; 0 can only come of a curve logged at step 0
        previous = (step, error)
    return None
