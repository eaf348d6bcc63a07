"""`alexlab report SWEEP_DIR`: what did each component buy? A verdict on each of the paper's claims, and a table.

Runs are the job directories of the sweep (children, or grandchildren, of SWEEP_DIR holding a metrics.json or a
.hydra/). Two runs are the same configuration when their switches and their other overrides (minus `seed=` and
`trial.*`) are equal; a row is a configuration. Per run the report reads, in percent or points:

- the errors: test top-1/top-5 after training (metrics.json `final`), val top-1/top-5 at the best epoch (`best`);
- the gap: final val top-1 error minus final train_eval top-1 error (training images evaluated as the validation
  images are, without dropout and augmentation), the generalisation gap at the end of training;
- the steps: optimiser steps until the training curve (metrics.json `curve`, the training error of every few
  batches) first reaches the threshold, interpolated linearly between the curve's points, each point at the step
  whose weights it measured on average (`bin_centres`). A run is *censored* at
  the threshold, with no steps, when its curve never reaches it or is already there at its first point (the curve
  cannot say when it got there); a speed claim with a censored run on either side stays `undecided`, and the
  tables say how many runs were censored.

Each row is compared with the baseline row by alexlab.stats: variant minus baseline with a 95% interval (for a
seeds=auto sweep, which may have stopped after any of its seed rounds, 95% shared out over those looks: see
alexlab.stats and --confidence), paired t
over the seeds both ran (runs of one seed share their data order, split, augmentation draws and init), else Welch;
a ratio for the steps (geometric mean, compared on the log scale); and the probability that the variant is better
(lower) with its interval (alexlab.stats). Runs that did not finish are listed, never averaged in.

The paper's claims (docs/paper.md) are decided on the quantity the paper measured: the errors for LRN, pooling,
the two towers, depth, PCA noise and the 10-crop test (test top-1; best val top-1 where no test error was
recorded); the steps to a training error for ReLU against tanh (6x faster) and for dropout (about 2x the
iterations); the gap for overfitting without dropout or without crops and flips. A claim applies to a row that
differs from the baseline in exactly that one switch. Its verdict: `agrees` (the interval excludes 0 on the claim's
side), `contradicts` (on the other side), `no effect` (inside +-margin: --margin points, --ratio-margin for a
ratio), else `undecided`, with the seeds per side that the observed spread says would decide it. An `agrees` or
`contradicts` whose interval also lies inside the margin is shown as negligible ("agrees, negligible"; verdicts.csv's
`negligible` column): the effect is real in sign and too small to matter. An `agrees` on a claim with a number
(1.4 points, 6x) also says how the size compares: "smaller than claimed" where the whole interval lies between 0
and the claimed value, "larger than claimed" where it lies beyond it (not for "over 1 point"; verdicts.csv's `size`
column); nothing where the claimed value is inside the interval.

The threshold of the steps (--threshold, percent) defaults to the paper's 25% where every run compared on speed
reaches it after its curve's first point, else to the lowest training error that all of them reach, rounded up to
a whole percent (or halfway to the lowest first point, where rounding up would pass it); where no threshold is
reached by every such run after its first point, the paper's 25%, and the censored runs leave the speed claims
undecided. The report states which. The baseline row is `--baseline KEY=VALUE[,...]` if given, else the row
whose `ablation` switch is `baseline`, else the row whose varying values equal the sweep's base config in
multirun.yaml (`hydra.runtime.choices` for switches, the composed value for other keys), else the first row by
job number.

Writes report.md, report.csv (a row per configuration), verdicts.csv (a row per claim), report_verdicts.png,
report_diff.png and report_curves.png into SWEEP_DIR, and for an Optuna sweep (SWEEP_DIR/optuna_study.yaml)
trials.md and param_importances.png.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from textwrap import shorten

import matplotlib
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from alexlab import record
from alexlab.errors import BadFile, BadValue, NotFound
from alexlab.stats import (
    CONFIDENCE,
    MAX_SEEDS_NEEDED,
    VERDICTS,
    Comparison,
    Improvement,
    compare,
    inside_margin,
    probability_of_improvement,
    seeds_needed,
    sequential_confidence,
    verdict,
)
from alexlab.sweep import sweep_design

matplotlib.use("Agg")  # reports are written on headless machines; Optuna's plot goes through pyplot

# metric key in metrics.json -> (section it is read from, its name in the report)
METRICS = {
    "val/top1_err": ("best", "val top-1"),
    "val/top5_err": ("best", "val top-5"),
    "test/top1_err": ("final", "test top-1"),
    "test/top5_err": ("final", "test top-5"),
}
GAP, STEPS = "gap", "steps"  # the two measures besides the errors (module docstring)
MEASURES = (*METRICS, GAP, STEPS)
MEASURE_NAMES = {GAP: "gap (val - train_eval top-1)", STEPS: "steps to the threshold"}
PAPER_THRESHOLD = 25.0  # percent training error: the paper's Figure 1 (ReLU against tanh)
DEFAULT_MARGIN = 0.25  # points: below the paper's smallest claimed effect (overlapping pooling, 0.4 points)
DEFAULT_RATIO_MARGIN = 1.1  # a ratio of steps within 1/1.1 .. 1.1 is no effect


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims about changing one switch from the baseline's option to the variant's."""

    measure: str  # "error", "gap" or "steps" (the module docstring)
    direction: int  # +1: the variant's measure is higher (a higher error, a larger gap, more steps); -1: lower
    paper: str  # what the paper says, in short, with its section
    top1: float | None = None  # error claims: points, variant minus baseline
    top5: float | None = None
    ratio: float | None = None  # steps claims: variant / baseline
    qualifier: str = ""  # "about", "over"
    test_only: bool = False  # validation always uses the centre view: the 10-crop test shows on the test split only

    def reversed(self) -> Claim:
        """The same claim read from the variant's side (a sweep whose baseline is the paper's variant)."""
        negate = lambda x: None if x is None else -x
        return replace(
            self,
            direction=-self.direction,
            top1=negate(self.top1),
            top5=negate(self.top5),
            ratio=None if self.ratio is None else 1 / self.ratio,
            qualifier={"over": "under"}.get(self.qualifier, self.qualifier),
        )

    def expected(self) -> str:
        """The paper's number in the report's sign convention (variant minus baseline, or variant / baseline)."""
        if self.measure == STEPS:
            return f"x{self.ratio:.2g}" if self.ratio is not None else ""
        if self.top1 is None:
            return "larger" if self.direction > 0 else "smaller"
        numbers = f"{self.top1:+.1f} / " + ("-" if self.top5 is None else f"{self.top5:+.1f}")
        return " ".join(part for part in (self.qualifier, numbers, "(test only)" if self.test_only else "") if part)


# The paper's ablation claims (Krizhevsky et al. 2012; docs/paper.md gives each one's words and section), as
# (switch, the paper's option, the option it compares against) -> claims about that change.
PAPER_CLAIMS: dict[tuple[str, str, str], tuple[Claim, ...]] = {
    ("lrn", "on", "off"): (Claim("error", +1, "LRN lowers top-1/top-5 error by 1.4/1.2 points (3.3)", 1.4, 1.2),),
    ("pooling", "overlap", "plain"): (
        Claim("error", +1, "overlapping pooling lowers top-1/top-5 error by 0.4/0.3 points (3.4)", 0.4, 0.3),
    ),
    ("split", "grouped", "half"): (
        Claim(
            "error", +1, "two towers lower top-1/top-5 error by 1.7/1.2 points against half the kernels (3.2)", 1.7, 1.2
        ),  # fmt: skip
    ),
    ("depth", "5", "4"): (
        Claim("error", +1, "removing a middle conv layer costs about 2 points top-1 (7)", 2.0, None, qualifier="about"),
    ),
    ("augment", "paper", "flip_crop"): (
        Claim("error", +1, "PCA colour noise lowers top-1 error by over 1 point (4.1)", 1.0, None, qualifier="over"),
    ),
    ("test_views", "ten_crop", "centre"): (
        Claim(
            "error",
            +1,
            "10-crop testing (4.1) lowers top-1/top-5 error, by 1.5/1.3 points (not the paper's figure)",
            1.5,
            1.3,
            test_only=True,
        ),  # fmt: skip
    ),
    ("activation", "relu", "tanh"): (
        Claim(STEPS, +1, "ReLU reaches 25% training error 6x faster than tanh (3.1, Figure 1)", ratio=6.0),
    ),
    ("dropout", "on", "off"): (
        Claim(GAP, +1, "without dropout, substantial overfitting (4.2)"),
        Claim(STEPS, -1, "dropout roughly doubles the iterations to converge (4.2)", ratio=0.5),
    ),
    ("augment", "paper", "none"): (Claim(GAP, +1, "without crops and flips, substantial overfitting (4.1)"),),
    ("augment", "flip_crop", "none"): (Claim(GAP, +1, "without crops and flips, substantial overfitting (4.1)"),),
}
WITHOUT_METRICS = ("no metrics.json", "unreadable")  # statuses of runs without a record to read numbers from
NOT_COMPONENTS = {"ablation"}  # a label for the run, not a part of the network: never counted as the change


@dataclass
class Run:
    job: str  # the job directory, relative to the sweep dir
    status: str  # a record's (alexlab.record.Status), or no metrics.json, unreadable, copy
    error: str | None = None
    seed: int | None = None
    switches: dict[str, str | None] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # the overrides that are not switches, seed or trial.*
    values: dict[str, float] = field(default_factory=dict)  # METRICS key, GAP, STEPS -> percent, points, steps
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val top-1 %)
    train_curve: list[tuple[float, float]] = field(default_factory=list)  # (step measured, training top-1 %)
    wall_time_s: float | None = None
    started: float | None = None  # Unix time, from the record: tells a copy of a run from a run
    censored: bool = False  # a training curve without steps to the threshold (module docstring)
    from_hydra: bool = False  # switches read from .hydra/ (identify_from_hydra), which names more groups than ours


@dataclass
class Summary:
    values: list[float]
    mean: float | None  # for STEPS the geometric mean
    std: float | None  # sample (ddof=1); None when fewer than 2 values


@dataclass
class Finding:
    """A claim of the paper decided on one row against the baseline."""

    change: str  # "lrn on->off"
    claim: Claim
    measure: str  # the metrics key or GAP / STEPS it was decided on
    comparison: Comparison
    improvement: Improvement
    verdict: str
    seeds_needed: int | None  # per side, for an undecided verdict
    row_index: int = 0
    negligible: bool = False  # agrees or contradicts, yet the whole interval lies inside the no-effect margin
    censored: int = 0  # a speed claim: runs of the two rows without steps to the threshold (module docstring)
    size: str = ""  # an agrees on a claim with a number: "smaller" or "larger" than claimed (module docstring)

    @property
    def shown_verdict(self) -> str:
        """The verdict as the tables and plots show it: "agrees, negligible" where the interval excludes 0 on the
        claim's side but lies inside the margin (e.g. +0.11 [+0.05, +0.16] points where the paper says 2)."""
        if self.negligible:
            return f"{self.verdict}, negligible"
        return f"{self.verdict}, {self.size} than claimed" if self.size else self.verdict

    @property
    def measured(self) -> str:
        """variant minus baseline (or the ratio) with its interval, as the tables show it."""
        c = self.comparison
        if c.estimate is None:
            return "no runs to compare"
        if self.measure == STEPS:
            ratio, low, high = c.ratio
            interval = "n/a" if low is None else f"{low:.2f}, {high:.2f}"
            return f"x{ratio:.2f} [{interval}]"
        interval = "n/a" if c.low is None else f"{c.low:+.2f}, {c.high:+.2f}"
        return f"{c.estimate:+.2f} [{interval}]"


@dataclass
class Row:
    index: int
    label: str
    switches: dict[str, str | None]
    settings: dict[str, str]
    runs: list[Run]  # finished
    unfinished: list[Run]
    summaries: dict[str, Summary] = field(default_factory=dict)
    differences: dict[str, Comparison] = field(default_factory=dict)
    change: str = ""  # the one switch change against the baseline, e.g. "lrn on->off"
    claims: tuple[Claim, ...] = ()
    findings: list[Finding] = field(default_factory=list)


@dataclass
class StudySummary:
    name: str
    storage: str
    objective: str
    study: object = None  # the loaded optuna.Study
    trials: list = field(default_factory=list)  # optuna FrozenTrials
    best: object = None  # the best FrozenTrial, once one completed
    importance_skipped: str = ""  # why param_importances.png was not drawn
    error: str = ""  # why the study could not be loaded


@dataclass
class Report:
    sweep_dir: Path
    rows: list[Row]
    baseline: Row
    baseline_reason: str
    columns: list[str]  # the switches and settings that vary across the sweep
    runs: list[Run]
    plot_metric: str
    threshold: float  # percent training error of STEPS
    threshold_reason: str
    margin: float
    ratio_margin: float
    study: StudySummary | None = None  # for an Optuna sweep
    confidence: float = CONFIDENCE  # of every interval
    looks: int = 1  # seed rounds after which the sweep may have stopped on its verdicts (alexlab.sweep)

    @property
    def level(self) -> str:
        return level_name(self.confidence)

    @property
    def unfinished(self) -> list[Run]:
        return [run for run in self.runs if run.status != "finished"]

    @property
    def findings(self) -> list[Finding]:
        return [finding for row in self.rows for finding in row.findings]

    def undecided(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.verdict == "undecided"]


def build_report(
    sweep_dir: str | Path,
    baseline: str | None = None,
    metric: str | None = None,
    source: str = "runs",
    threshold: float | None = None,
    margin: float | None = None,
    ratio_margin: float | None = None,
    confidence: float | None = None,
) -> Report:
    """source "runs": each job's metrics.json; "wandb": each job's offline W&B run file (the same numbers).
    threshold: percent training error for the steps (None: see the module docstring). margin, ratio_margin: of no
    effect (None: as the seed rounds sweep that wrote the directory decided, else DEFAULT_*). confidence: the
    intervals' level (None: 95%, shared out over the looks of a seeds=auto sweep)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise NotFound(f"sweep directory not found: {sweep_dir}")
    if metric is not None and metric not in METRICS:
        raise BadValue(f"unknown metric {metric}; choose one of: {', '.join(METRICS)}")
    check_options(threshold, margin, ratio_margin, confidence)
    design = sweep_design(sweep_dir / "multirun.yaml")
    check_options(
        design.threshold, design.margin, design.ratio_margin, None, f"{sweep_dir}/multirun.yaml: hydra.sweeper."
    )
    chosen = "chosen with --threshold" if threshold is not None else "the sweep's, hydra.sweeper.threshold"
    threshold = design.threshold if threshold is None else threshold
    margin = next(m for m in (margin, design.margin, DEFAULT_MARGIN) if m is not None)
    ratio_margin = next(m for m in (ratio_margin, design.ratio_margin, DEFAULT_RATIO_MARGIN) if m is not None)
    confidence = sequential_confidence(design.looks) if confidence is None else float(confidence)
    runs = read_runs(sweep_dir, source)
    if not runs:
        raise BadValue(f"{sweep_dir} holds no runs (no sub-directory with a metrics.json or .hydra/)")
    known = set().union(*(run.switches for run in runs if not run.from_hydra))
    for run in runs:
        if known and run.switches and run.from_hydra:  # Hydra's choices name more groups: keep ours
            run.switches = {k: run.switches.get(k) for k in known}
        run.settings = settings_of(run.overrides, run.switches)
    rows = group_rows([run for run in runs if run.switches or run.settings])
    keys = sorted({k for row in rows for k in (*row.switches, *row.settings)})
    columns = [k for k in keys if len({config_value(row, k) for row in rows}) > 1]
    for row in rows:
        row.label = ", ".join(f"{k}={shown(config_value(row, k))}" for k in columns) or "all runs"
    base, reason = choose_baseline(rows, columns, sweep_dir, baseline)
    for row in rows:
        if row is not base:
            row.change, row.claims = paper_claims(row, base)
    speed_rows = [base, *(row for row in rows if any(claim.measure == STEPS for claim in row.claims))]
    threshold, threshold_reason = choose_threshold(speed_rows if len(speed_rows) > 1 else rows, threshold, chosen)
    for run in runs:
        steps = steps_to(run.train_curve, threshold)
        if steps is not None:
            run.values[STEPS] = steps
        run.censored = bool(run.train_curve) and steps is None
    for row in rows:
        row.summaries = {m: summarize([run.values[m] for run in row.runs if m in run.values], m) for m in MEASURES}
    for row in rows:
        if row is not base:
            row.differences = {
                m: compare(*paired_values(row, base, m), log_scale=m == STEPS, confidence=confidence) for m in MEASURES
            }
            row.findings = [decide(row, base, claim, margin, ratio_margin, confidence) for claim in row.claims]
    if metric is None:
        metric = "test/top1_err" if any("test/top1_err" in run.values for run in runs) else "val/top1_err"
    study = read_study(sweep_dir) if (sweep_dir / "optuna_study.yaml").exists() else None
    return Report(sweep_dir, rows, base, reason, columns, runs, metric, threshold, threshold_reason, margin,
                  ratio_margin, study, confidence, design.looks)  # fmt: skip


def check_options(
    threshold: float | None,
    margin: float | None,
    ratio_margin: float | None,
    confidence: float | None,
    prefix: str = "--",
) -> None:
    """The report's options, given on its command line (prefix "--": --ratio-margin) or to a seed rounds sweep
    (prefix "hydra.sweeper.": hydra.sweeper.ratio_margin): one line naming the bad one. None: not given."""
    name = lambda key: prefix + (key.replace("_", "-") if prefix == "--" else key)
    if threshold is not None and not 0 < threshold < 100:
        raise BadValue(f"{name('threshold')} is a training error in percent, between 0 and 100; got {threshold}")
    if margin is not None and not (0 <= margin < math.inf):
        raise BadValue(f"{name('margin')} must be a finite number of points >= 0, got {margin}")
    if ratio_margin is not None and not (1 <= ratio_margin < math.inf):
        raise BadValue(f"{name('ratio_margin')} must be a finite ratio >= 1, got {ratio_margin}")
    if confidence is not None and not 0 < confidence < 1:
        raise BadValue(f"{name('confidence')} is a level between 0 and 1 (0.95 for 95%), got {confidence}")


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    def is_job(path: Path) -> bool:
        return (path / "metrics.json").exists() or (path / ".hydra").is_dir()

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
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status="no metrics.json")
    try:
        ended = record.read(job_dir)
    except BadFile as exc:
        ended = None
        run.status, run.error = "unreadable", str(exc)
    if ended is None:
        run.error = run.error or "still running, or killed before it wrote one"
        identify_from_hydra(run, job_dir)
        return run
    run.status, run.error = ended.status.value, ended.error
    run.switches = {k: none_or_str(v) for k, v in ended.switches.items()}
    run.overrides, run.seed, run.started = list(ended.overrides), ended.seed, ended.started
    if not run.switches:  # every record alexlab writes names its switches; this one does not (written by hand?)
        identify_from_hydra(run, job_dir)
        if not run.switches and run.status == "finished":  # nothing says which configuration it ran: not counted
            run.status, run.error = "unidentified", "its record names no switches and it has no .hydra/ files"
    run.wall_time_s = ended.wall_time_s if finite(ended.wall_time_s) else None
    for key, (section, _) in METRICS.items():
        value = getattr(ended, section).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    if finite(ended.final.get("val/top1_err")) and finite(ended.final.get("train_eval/top1_err")):
        run.values[GAP] = 100.0 * (ended.final["val/top1_err"] - ended.final["train_eval/top1_err"])
    for entry in ended.history:
        if finite(entry.get("val/top1_err")) and finite(entry.get("epoch")):
            run.curve.append((int(entry["epoch"]), 100.0 * entry["val/top1_err"]))
    run.train_curve = training_curve([(entry.get("step"), entry.get("train/top1_err")) for entry in ended.curve])
    return run


def identify_from_hydra(run: Run, job_dir: Path) -> None:
    """The configuration and seed of a job whose record does not say them, from what Hydra wrote when it started
    (.hydra/): its config-group choices are the switches. What the record already says is kept."""
    hydra_dir, run.from_hydra = job_dir / ".hydra", True
    choices = read_yaml(hydra_dir / "hydra.yaml").get("hydra", {}).get("runtime", {}).get("choices", {})
    run.switches = {k: none_or_str(v) for k, v in choices.items() if not k.startswith("hydra/")}
    run.overrides = run.overrides or record.identity(record.hydra_overrides(job_dir) or [])
    if run.seed is None:
        seeds = [o.partition("=")[2] for o in run.overrides if o.startswith("seed=")]
        run.seed = int(seeds[-1]) if seeds and seeds[-1].isdigit() else read_yaml(hydra_dir / "config.yaml").get("seed")


def mark_copies(runs: list[Run]) -> None:
    """A folder that holds two copies of one sweep (or of one run) would count each run twice: a run with the
    overrides, seed and start time of one read before it is a copy, listed with the unfinished runs, not counted."""
    seen: dict[tuple, str] = {}
    for run in runs:
        if run.started is None or run.status in WITHOUT_METRICS:
            continue
        key = (tuple(sorted(run.overrides)), run.seed, run.started)
        if key in seen:
            run.status = "copy"
            run.error = f"a copy of {seen[key]} (the same overrides, seed and start time): counted once"
        else:
            seen[key] = run.job


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_wandb_run(job_dir: Path, sweep_dir: Path) -> Run:
    """A job's numbers from its W&B run file (alexlab.wandb_runs), chosen as metrics.json chooses them: val errors at
    the epoch of the lowest val top-1 error, test errors as logged, the gap from the last epoch, the training curve
    from its curve/* rows. A job resumed after an interruption holds a W&B run per stint: they count as one
    (wandb_runs.job_run), every epoch with the stint that trained it last."""
    from alexlab.wandb_runs import find_runs, job_run

    found = find_runs(job_dir)
    if not found:
        run = read_run(job_dir, sweep_dir)  # identifies the job; its numbers are not taken from metrics.json
        run.values, run.curve, run.train_curve = {}, [], []
        run.status, run.error = "no W&B run", "no run-*.wandb file in the job directory (logger without wandb?)"
        return run
    wandb_run = job_run(found)
    config, summary = wandb_run.config, wandb_run.summary
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=summary.get("status") or wandb_run.state)
    run.error = summary.get("error")
    reserved = {"seed", "overrides", "git_commit", "git_dirty", "config", "_wandb"}
    run.switches = {k: none_or_str(v) for k, v in config.items() if k not in reserved}
    run.overrides = list(config.get("overrides") or [])
    run.seed = config.get("seed")
    validations = [row for row in wandb_run.history if finite(row.get("val/top1_err"))]
    best = min(validations, key=lambda row: row["val/top1_err"]) if validations else {}
    for key, (section, _) in METRICS.items():
        value = (best if section == "best" else summary).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    last = validations[-1] if validations else {}
    if finite(last.get("val/top1_err")) and finite(last.get("train_eval/top1_err")):
        run.values[GAP] = 100.0 * (last["val/top1_err"] - last["train_eval/top1_err"])
    run.curve = [(int(row["epoch"]), 100.0 * row["val/top1_err"]) for row in validations]
    run.train_curve = training_curve(  # the curve's rows: those that log it (others log the epochs' metrics)
        [(row.get("trainer/global_step"), row["curve/train_top1_err"]) for row in wandb_run.history
         if "curve/train_top1_err" in row]
    )  # fmt: skip
    return run


def read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


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


def group_rows(runs: list[Run]) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for run in runs:  # in job order, so rows come in the order of their first job
        identity = (tuple(sorted(run.switches.items())), tuple(sorted(run.settings.items())))
        row = rows.setdefault(identity, Row(len(rows), "", run.switches, run.settings, [], []))
        (row.runs if run.status == "finished" else row.unfinished).append(run)
    return list(rows.values())


def config_value(row: Row, key: str) -> str | None:
    return row.switches[key] if key in row.switches else row.settings.get(key)


def summarize(values: list[float], measure: str = "") -> Summary:
    """Mean and sample std; for the steps (a ratio scale) the geometric mean and the std of the logs."""
    if measure == STEPS and values:
        logs = [math.log(v) for v in values]
        return Summary(values, math.exp(statistics.fmean(logs)), statistics.stdev(logs) if len(logs) >= 2 else None)
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Summary(values, mean, std)


def by_seed(row: Row, measure: str) -> dict:
    """The row's values of a measure keyed by seed, for pairing; a run whose seed is missing or repeated in the row
    (two copies of a sweep, say) is keyed by its job instead, so that it is never paired."""
    seeds = Counter(run.seed for run in row.runs)
    return {
        run.seed if run.seed is not None and seeds[run.seed] == 1 else f"job {run.job}": run.values[measure]
        for run in row.runs
        if measure in run.values
    }


def paired_values(row: Row, base: Row, measure: str) -> tuple[dict, dict]:
    return by_seed(row, measure), by_seed(base, measure)


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


def choose_threshold(
    rows: list[Row], wanted: float | None, chosen: str = "chosen with --threshold"
) -> tuple[float, str]:
    """The training error that the steps count to, and why (module docstring)."""
    if wanted is not None:
        return float(wanted), chosen
    curves = [run.train_curve for row in rows for run in row.runs if run.train_curve]
    if not curves:
        return PAPER_THRESHOLD, "the paper's, from Figure 1; no run compared on speed has a training curve"
    reached = max(min(error for _, error in curve) for curve in curves)  # every run gets this low
    first = min(curve[0][1] for curve in curves)  # and none is this low at its first point
    if reached <= PAPER_THRESHOLD < first:
        return PAPER_THRESHOLD, "the paper's, from Figure 1, which every run compared on speed reaches"
    if reached < first:
        rounded = math.ceil(reached)
        threshold = float(rounded) if rounded < first else (reached + first) / 2
        return threshold, (
            f"the lowest training error every run compared on speed reaches after its first logged point (the "
            f"paper's {PAPER_THRESHOLD:g}% is " + ("not reached by all of them)" if reached > PAPER_THRESHOLD else
            "passed before the first point of some)")
        )  # fmt: skip
    return PAPER_THRESHOLD, (
        "the paper's, from Figure 1; no training error is reached by every run compared on speed after its first "
        "logged point, so the runs censored at it leave the speed claims undecided"
    )


def paper_claims(row: Row, base: Row) -> tuple[str, tuple[Claim, ...]]:
    """The one switch change of `row` against the baseline ("lrn on->off") and the paper's claims about it."""
    keys = (set(row.switches) | set(base.switches)) - NOT_COMPONENTS
    changed = [k for k in sorted(keys) if row.switches.get(k) != base.switches.get(k)]
    if len(changed) != 1 or row.settings != base.settings:
        return "", ()
    (key,) = changed
    before, after = base.switches.get(key), row.switches.get(key)
    change = f"{key} {before}->{after}"
    if (key, before, after) in PAPER_CLAIMS:
        return change, PAPER_CLAIMS[key, before, after]
    if (key, after, before) in PAPER_CLAIMS:
        return change, tuple(claim.reversed() for claim in PAPER_CLAIMS[key, after, before])
    return change, ()


def decide(
    row: Row, base: Row, claim: Claim, margin: float, ratio_margin: float, confidence: float = CONFIDENCE
) -> Finding:
    """The verdict on one claim: its measure compared (paired where seeds match) and read against its direction."""
    if claim.measure == "error":
        has_test = all("test/top1_err" in r.values for r in (*row.runs, *base.runs)) and (row.runs and base.runs)
        measure = "test/top1_err" if has_test or claim.test_only else "val/top1_err"
    else:
        measure = claim.measure
    comparison = row.differences[measure]
    room = math.log(ratio_margin) if measure == STEPS else margin
    result = verdict(comparison, claim.direction, room)
    improvement = probability_of_improvement(*paired_values(row, base, measure), confidence)
    censored = sum(run.censored for run in (*row.runs, *base.runs)) if measure == STEPS else 0
    if censored:  # the runs left are not a sample of the row: the slow (or the fast) ones are missing
        result = "undecided"
    needed = seeds_needed(comparison, room, confidence) if result == "undecided" and not censored else None
    negligible = result in ("agrees", "contradicts") and inside_margin(comparison, room)
    size = size_against_paper(comparison, claim) if result == "agrees" else ""
    return Finding(row.change, claim, measure, comparison, improvement, result, needed, row.index, negligible,
                   censored, size)  # fmt: skip


def size_against_paper(comparison: Comparison, claim: Claim) -> str:
    """ "smaller" or "larger" where the interval lies wholly on one side of the claimed value (on the claim's side
    of 0, as an agreeing interval is); "" where it holds the value, where the claim has no number, and for "larger"
    where the claim is a lower bound ("over 1 point")."""
    paper = math.log(claim.ratio) if claim.measure == STEPS and claim.ratio else claim.top1
    if paper is None or comparison.low is None or claim.measure == GAP:
        return ""
    # mirrored so that the claim's side is positive (as stats.verdict reads it)
    low, high = sorted((comparison.low * claim.direction, comparison.high * claim.direction))
    paper *= claim.direction
    if high < paper:
        return "smaller"
    return "larger" if low > paper and claim.qualifier != "over" else ""  # "over 1 point": more is as claimed


def choose_baseline(rows: list[Row], columns: list[str], sweep_dir: Path, wanted: str | None) -> tuple[Row, str]:
    if wanted:
        pairs = [part.partition("=")[::2] for part in wanted.split(",")]
        matches = [row for row in rows if all(same_value(config_value(row, k), v.strip("'\"")) for k, v in pairs)]
        if len(matches) != 1:
            labels = "; ".join(row.label for row in (matches or rows))
            found = "matches no row" if not matches else f"matches {len(matches)} rows"
            raise BadValue(f"--baseline {wanted} {found}: {labels}")
        return matches[0], f"chosen with --baseline {wanted}"
    for row in rows:
        if row.switches.get("ablation") == "baseline":
            return row, "its `ablation` switch is `baseline`"
    base = base_config(sweep_dir / "multirun.yaml", columns)
    if base:
        for row in rows:
            if all(same_value(config_value(row, k), v) for k, v in base.items()):
                where = ", ".join(f"{k}={v}" for k, v in base.items())
                return row, f"its varying values are the sweep's base choices in multirun.yaml ({where})"
    return rows[0], "the first row by job number (no row is marked or has the sweep's base choices)"


def base_config(multirun_yaml: Path, keys: list[str]) -> dict[str, str]:
    """The sweep's base value of each key: the group choice (hydra.runtime.choices), else the composed value."""
    composed = read_yaml(multirun_yaml)
    choices = composed.get("hydra", {}).get("runtime", {}).get("choices", {})
    values = {}
    for key in keys:
        node = composed
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        value = choices.get(key, node)
        if value is None or isinstance(value, (dict, list)):
            return {}  # the sweep varies something the base config does not say: no row is "the base"
        values[key] = str(value)
    return values


def shown(value) -> str:
    """A value for people: long numbers (Optuna's samples) to 4 significant digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if len(str(value)) <= 8 else f"{number:.4g}"


def shown_params(trial) -> str:
    return ", ".join(f"{name}={shown(value)}" for name, value in trial.params.items())


def same_value(a: str | None, b: str) -> bool:
    try:
        return a == b or float(a) == float(b)  # 0.01 and 1e-2
    except (TypeError, ValueError):
        return False


def read_study(sweep_dir: Path) -> StudySummary:
    import optuna

    from alexlab.optuna_storage import open_storage

    spec = read_yaml(sweep_dir / "optuna_study.yaml")
    storage = str(spec.get("storage", ""))
    if "://" not in storage and not Path(storage).expanduser().is_absolute() and (sweep_dir / storage).exists():
        storage = str(sweep_dir / storage)
    summary = StudySummary(str(spec.get("study_name")), storage, str(spec.get("objective") or "value"))
    if "://" not in storage and not Path(storage).expanduser().exists():
        summary.error = f"its storage {storage} does not exist"
        return summary
    try:
        summary.study = optuna.load_study(study_name=summary.name, storage=open_storage(storage))
    except Exception as exc:  # the report on the runs is still worth writing
        summary.error = f"{type(exc).__name__}: {exc}"
        return summary
    summary.trials = summary.study.get_trials(deepcopy=False)
    complete = [t for t in summary.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        summary.best = summary.study.best_trial
    varying = {name for t in complete for name in t.params if len({str(u.params.get(name)) for u in complete}) > 1}
    if len(complete) < 2 or not varying:
        summary.importance_skipped = f"{len(complete)} completed trial(s), {len(varying)} varying parameter(s)"
    return summary


def write_report(report: Report) -> list[Path]:
    out = report.sweep_dir
    written = [out / "report_verdicts.png", out / "report_diff.png", out / "report_curves.png"]
    plot_verdicts(report, written[0])
    plot_differences(report, written[1])
    plot_curves(report, written[2])
    if report.study is not None:
        written += write_study(report.study, out)
    (out / "report.md").write_text(report_markdown(report, [p.name for p in written if p.suffix == ".png"]))
    write_csv(report, out / "report.csv")
    write_verdicts_csv(report, out / "verdicts.csv")
    return [out / "report.md", out / "report.csv", out / "verdicts.csv", *written]


def measure_name(measure: str) -> str:
    return METRICS[measure][1] + " error" if measure in METRICS else MEASURE_NAMES[measure]


def cell_summary(summary: Summary, measure: str = "") -> str:
    if summary.mean is None:
        return ""
    if measure == STEPS:
        return f"{summary.mean:.0f}" + ("" if summary.std is None else f" (x/ {math.exp(summary.std):.2f})")
    return f"{summary.mean:.2f}" + ("" if summary.std is None else f" ± {summary.std:.2f}")


def cell_difference(row: Row, base: Row, measure: str) -> str:
    if row is base:
        return "baseline"
    c = row.differences.get(measure)
    if c is None or c.estimate is None:
        return ""
    if measure == STEPS:
        ratio, low, high = c.ratio
        return f"x{ratio:.2f} [" + ("n/a" if low is None else f"{low:.2f}, {high:.2f}") + "]"
    return f"{c.estimate:+.2f} [" + ("n/a" if c.low is None else f"{c.low:+.2f}, {c.high:+.2f}") + "]"


def test_name(c: Comparison) -> str:
    if c.test == "paired t":
        return f"paired t, {c.n_pairs} seeds"
    if c.test == "Welch t":
        return f"Welch t, {c.n_variant} vs {c.n_baseline} runs"
    return f"n/a ({c.n_variant} vs {c.n_baseline} runs)"


def cell_improvement(p: Improvement) -> str:
    """The probability with its interval; "[n/a]" where one run a side leaves none (one pair's 0 or 1 is no
    certainty), as the Δ columns say it."""
    if p.probability is None:
        return ""
    return f"{p.probability:.2f}" + (" [n/a]" if p.low is None else f" [{p.low:.2f}, {p.high:.2f}]")


def cell_seeds_needed(finding: Finding) -> str:
    if finding.verdict != "undecided":
        return ""
    if finding.censored:
        return f"? ({finding.censored} runs censored: another threshold)"
    if finding.seeds_needed is None:
        return "? (no spread yet)"
    return f"> {MAX_SEEDS_NEEDED}" if finding.seeds_needed > MAX_SEEDS_NEEDED else str(finding.seeds_needed)


def verdict_table(report: Report) -> str:
    header = ["change", "the paper", "measured on", "paper's Δ", f"measured Δ [{report.level} CI]", "test"]
    header += ["P(variant better)", "verdict", "seeds to decide"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in report.findings:
        cells = [f.change, f.claim.paper, measure_name(f.measure), f.claim.expected(), f.measured]
        cells += [test_name(f.comparison), cell_improvement(f.improvement), f"**{f.shown_verdict}**"]
        cells.append(cell_seeds_needed(f))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def markdown_table(report: Report) -> str:
    header = ["#", *report.columns, "n", "seeds"]
    for name in (label for _, label in METRICS.values()):
        header += [f"{name} %", f"Δ {name} [{report.level} CI]"]
    header += ["gap (points)", f"Δ gap [{report.level} CI]", f"steps to {report.threshold:g}%"]
    header += [f"ratio [{report.level} CI]", "paper's Δ (claim)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        seeds = ", ".join(str(run.seed) for run in row.runs)
        n = f"{len(row.runs)}" + (f" (+{len(row.unfinished)} unfinished)" if row.unfinished else "")
        cells = [f"{row.index}" + (" (baseline)" if row is report.baseline else "")]
        cells += [shown(config_value(row, k)) for k in report.columns] + [n, seeds]
        for measure in MEASURES:
            summary = cell_summary(row.summaries[measure], measure)
            censored = sum(run.censored for run in row.runs) if measure == STEPS else 0
            summary += f" (+{censored} censored)" if censored else ""
            cells += [summary.strip(), cell_difference(row, report.baseline, measure)]
        cells.append("; ".join(f"{row.change}: {claim.expected()}" for claim in row.claims))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_text(report: Report) -> str:
    return (
        "Errors in percent, mean ± sample std (ddof=1) over seeds; val at the best epoch, test after training. The "
        "gap is the final val top-1 error minus the final train_eval top-1 error (training images evaluated as the "
        "validation images are), in points. Steps: optimiser steps until the training curve first reaches "
        f"{report.threshold:g}% training error ({report.threshold_reason}), geometric mean (x/ its spread), compared "
        "as a ratio; a run whose curve never reaches the threshold, or is already there at its first point, is "
        "censored (no steps), and a speed claim with a censored run stays undecided. "
        f"Δ = variant minus baseline (a ratio for the steps) with a {report.level} interval: paired t over the seeds "
        "both rows ran (runs of one seed share their data order, split, augmentation and init), Welch t where "
        "fewer than two seeds match, n/a with fewer than two runs. P(variant better): the probability that the "
        f"variant's value is lower, with a {report.level} interval (matched seeds: the exact binomial interval of the "
        "seeds won; "
        "else a bootstrap over the runs). Verdicts: agrees / contradicts (the interval "
        f"excludes 0 on the claim's side / the other side), no effect (inside ±{report.margin:g} points, or a ratio "
        f"within 1/{report.ratio_margin:g}..{report.ratio_margin:g}), else undecided with the seeds per side the "
        "observed spread says would decide it; an interval that agrees or contradicts but lies inside the margin is "
        "marked negligible (a real effect too small to matter), and an agreement on a claim with a number says "
        "whether the whole interval is smaller or larger than the claimed value. Validation always uses the centre "
        "view, so test_views changes only the test error." + ("" if report.findings else level_text(report))
    )  # the level's reason goes with the verdicts where there are some (report_markdown)


def level_name(confidence: float) -> str:
    """An intervals' level as the tables name it: "95%", "99.4%", never rounded up to "100%"."""
    digits = next(d for d in range(3, 12) if float(f"{100 * confidence:.{d}g}") < 100)
    return f"{100 * confidence:.{digits}g}%"


def level_text(report: Report) -> str:
    """Why the intervals are not 95%, where they are not."""
    if report.looks > 1 and report.confidence == sequential_confidence(report.looks):
        return (
            f" Intervals at {report.level}: this seeds=auto sweep looks at its verdicts after each seed round from "
            f"min_seeds to max_seeds ({report.looks} looks) and stops once every claim is decided, so each look is "
            f"read at 95% shared out over the {report.looks} (Bonferroni): the chance that a verdict is wrong stays at "
            "5% over the whole sweep, where reading 95% at every look would raise it (`--confidence 0.95` reads "
            "these runs as if their number had been fixed in advance)."
        )
    if report.looks > 1:
        return (
            f" Intervals at {report.level} (--confidence), though this seeds=auto sweep may have stopped after any of "
            f"{report.looks} seed rounds: this level does not account for that (without --confidence the report "
            f"reads each look at {level_name(sequential_confidence(report.looks))})."
        )
    if report.confidence != CONFIDENCE:
        return f" Intervals at {report.level} (--confidence)."
    return ""


def report_markdown(report: Report, pngs: list[str]) -> str:
    counts = Counter(run.status for run in report.runs)
    by_status = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    lines = [
        f"# alexlab report: {report.sweep_dir}",
        "",
        f"{len(report.runs)} runs ({by_status}) in {len(report.rows)} configurations. "
        f"Baseline: row {report.baseline.index} ({report.baseline.label}), because {report.baseline_reason}.",
        "",
    ]
    if report.findings:
        verdicts = Counter(f.verdict for f in report.findings)
        tally = ", ".join(f"{verdicts[v]} {v}" for v in VERDICTS if verdicts[v])
        level = level_text(report).strip()
        lines += ["## Verdicts on the paper's claims", "", f"{len(report.findings)} claims: {tally}." + (
            f" {level}" if level else ""), ""]  # fmt: skip
        lines += [verdict_table(report), ""]
    lines += ["## Configurations", "", method_text(report), "", markdown_table(report), ""]
    if report.unfinished:
        lines += ["## Runs not averaged in", "", "| job dir | status | configuration | error |", "|---|---|---|---|"]
        row_of = {id(run): row for row in report.rows for run in row.unfinished}
        for run in report.unfinished:
            label = row_of[id(run)].label if id(run) in row_of else "unknown"
            error = (run.error or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {run.job} | {run.status} | {label} | {error} |")
        lines.append("")
    if report.study is not None:
        lines += ["## Optuna study", "", *study_lines(report.study), ""]
    lines += [f"![{name}]({name})" for name in pngs]
    return "\n".join(lines) + "\n"


def study_lines(study: StudySummary, where: str = "; see trials.md") -> list[str]:
    lines = [f"Study `{study.name}`: {len(study.trials)} trials, storage {study.storage}{where}."]
    if study.error:
        return [*lines, f"The study could not be loaded: {study.error}"]
    if study.best is None:
        lines.append("Best trial: none completed yet.")
    else:
        best = study.best
        lines.append(f"Best trial: number {best.number}, {study.objective} {best.value:.6g}, {shown_params(best)}.")
    if study.importance_skipped:
        lines.append(f"param_importances.png skipped: {study.importance_skipped} (needs 2 and 1).")
    return lines


def write_study(study: StudySummary, out: Path) -> list[Path]:
    written = [out / "trials.md"]
    if study.study is not None and not study.importance_skipped:
        import matplotlib.pyplot as plt
        import optuna

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = optuna.visualization.matplotlib.plot_param_importances(study.study)
            if axes.get_legend() is not None:  # Optuna puts it over the longest bar: beside the plot instead
                axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
            axes.figure.savefig(out / "param_importances.png", dpi=120, bbox_inches="tight")
            plt.close(axes.figure)
            written.append(out / "param_importances.png")
        except Exception as exc:  # e.g. an importance evaluator that cannot fit these trials
            study.importance_skipped = f"{type(exc).__name__}: {exc}"
    lines = [f"# Trials of `{study.name}`", "", *study_lines(study, where=""), ""]
    lines += ["| number | state | value | params | error | duration s |", "|---|---|---|---|---|---|"]
    for trial in study.trials:
        duration = "" if trial.duration is None else f"{trial.duration.total_seconds():.1f}"
        value = "" if trial.value is None else f"{trial.value:.6g}"
        error = str(trial.user_attrs.get("error") or "").replace("|", "\\|").replace("\n", " ")
        params = shown_params(trial)
        lines.append(f"| {trial.number} | {trial.state.name} | {value} | {params} | {error} | {duration} |")
    (out / "trials.md").write_text("\n".join(lines) + "\n")
    return written


def number(x) -> str:
    return "" if x is None else repr(float(x))


def write_csv(report: Report, path: Path) -> None:
    """A row per configuration: each measure's mean, std, difference against the baseline with its interval, the
    test that gave it and its degrees of freedom (steps: geometric mean, std of the logs, ratio), and the verdicts."""
    header = ["row", "label", "is_baseline", *report.columns, "n", "seeds", "n_unfinished"]
    for measure in MEASURES:
        name = measure.removesuffix("_err").replace("/", "_")
        header += [f"{name}_{part}" for part in ("mean", "std", "diff", "ci_low", "ci_high", "test", "dof")]
    header += ["change", "paper_top1", "paper_top5", "paper_claim", "verdicts"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in report.rows:
            cells = [row.index, row.label, int(row is report.baseline)]
            cells += [config_value(row, k) for k in report.columns]
            cells += [len(row.runs), ";".join(str(run.seed) for run in row.runs), len(row.unfinished)]
            for measure in MEASURES:
                summary, c = row.summaries[measure], row.differences.get(measure)
                if c is not None and measure == STEPS:
                    diff, low, high = c.ratio
                elif c is not None:
                    diff, low, high = c.estimate, c.low, c.high
                else:
                    diff = low = high = None
                cells += [number(summary.mean), number(summary.std), number(diff), number(low), number(high)]
                cells += ["" if c is None else c.test, number(None if c is None else c.dof)]
            errors = [claim for claim in row.claims if claim.measure == "error"]
            cells += [
                row.change,
                number(errors[0].top1 if errors else None),
                number(errors[0].top5 if errors else None),
            ]
            cells += ["; ".join(claim.paper for claim in row.claims)]
            cells += ["; ".join(f"{measure_name(f.measure)}: {f.shown_verdict}" for f in row.findings)]
            writer.writerow(cells)


def write_verdicts_csv(report: Report, path: Path) -> None:
    """A row per claim decided: what was compared, the estimate with its interval, the probability of improvement,
    the verdict and the seeds that would decide it."""
    header = ["row", "change", "claim", "measure", "paper_expected", "estimate", "ci_low", "ci_high", "scale", "test",
              "n_variant", "n_baseline", "n_pairs", "p_variant_better", "p_ci_low", "p_ci_high", "verdict",
              "seeds_needed", "threshold", "margin", "ratio_margin", "negligible", "censored",
              "confidence", "size"]  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for finding in report.findings:
            c, p = finding.comparison, finding.improvement
            estimate, low, high = c.ratio if finding.measure == STEPS else (c.estimate, c.low, c.high)
            writer.writerow([
                finding.row_index, finding.change, finding.claim.paper, finding.measure, finding.claim.expected(),
                number(estimate), number(low), number(high), "ratio" if finding.measure == STEPS else "points",
                c.test, c.n_variant, c.n_baseline, c.n_pairs, number(p.probability), number(p.low), number(p.high),
                finding.verdict, "" if finding.seeds_needed is None else finding.seeds_needed,
                report.threshold, report.margin, report.ratio_margin, str(finding.negligible).lower(),
                finding.censored, report.confidence, finding.size,
            ])  # fmt: skip


def short_label(report: Report, row: Row) -> str:
    """For the plots: what the row changes against the baseline (a named ablation sweep varies many columns),
    and, for the baseline, what it is (as the table labels it)."""
    if row is report.baseline:
        return f"{row.label} (baseline)" if len(row.label) <= 40 else "baseline"
    changed = [k for k in report.columns if config_value(row, k) != config_value(report.baseline, k)]
    return ", ".join(f"{k}={shown(config_value(row, k))}" for k in changed)


VERDICT_COLOURS = {"agrees": "C2", "contradicts": "C3", "no effect": "C7", "undecided": "C1"}


def plot_verdicts(report: Report, path) -> None:
    """One panel per kind of measure (errors and gaps in points, steps as a ratio on a log axis): each claim's
    measured effect with its interval, coloured by its verdict, the paper's value as a diamond, the no-effect
    margin shaded."""
    kinds = [kind for kind in ("error", GAP, STEPS) if any(f.claim.measure == kind for f in report.findings)]
    heights = [sum(f.claim.measure == kind for f in report.findings) for kind in kinds]
    figure = Figure(figsize=(9, 1.0 + 0.55 * sum(heights) + 0.9 * len(kinds)))
    if not kinds:
        axes = figure.subplots()
        axes.axis("off")
        axes.text(0.5, 0.5, "no row differs from the baseline in a switch the paper makes a claim about",
                  ha="center", va="center")  # fmt: skip
        figure.savefig(path, dpi=120, bbox_inches="tight")
        return
    panels = figure.subplots(len(kinds), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for axes, kind in zip(panels, kinds, strict=True):
        findings = [f for f in report.findings if f.claim.measure == kind]
        ratio = kind == STEPS
        for y, f in enumerate(findings):
            c = f.comparison
            point, low, high = c.ratio if ratio else (c.estimate, c.low, c.high)
            colour = VERDICT_COLOURS[f.verdict]
            if point is not None:
                xerr = None if low is None else [[point - low], [high - point]]
                axes.errorbar(point, y, xerr=xerr, fmt="o", color=colour, capsize=4)
                axes.annotate(f.shown_verdict, (point, y), xytext=(0, 7), textcoords="offset points", ha="center",
                              fontsize="small", color=colour)  # fmt: skip
            expected = f.claim.ratio if ratio else f.claim.top1
            if expected is not None and not (f.claim.test_only and f.measure.startswith("val/")):
                axes.plot(expected, y, "D", color="black", markersize=5, label="the paper" if y == 0 else None)
        if ratio:
            axes.set_xscale("log")
            low_x, high_x = axes.get_xlim()
            ticks = [2.0**k for k in range(math.floor(math.log2(low_x)), math.ceil(math.log2(high_x)) + 1)]
            axes.xaxis.set_major_locator(FixedLocator(ticks))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"x{x:g}"))
            axes.xaxis.set_minor_locator(NullLocator())
            axes.axvspan(1 / report.ratio_margin, report.ratio_margin, color="grey", alpha=0.15)
            axes.axvline(1, color="grey", lw=0.8)
            axes.set_xlabel(f"steps to {report.threshold:g}% training error, variant / baseline ({report.level} CI)")
        else:
            axes.axvspan(-report.margin, report.margin, color="grey", alpha=0.15)
            axes.axvline(0, color="grey", lw=0.8)
            what = "gap (val - train_eval top-1)" if kind == GAP else "top-1 error (test; val where no test)"
            axes.set_xlabel(f"Δ {what}, points, variant minus baseline ({report.level} CI)")
        axes.set_yticks(range(len(findings)), [f.change for f in findings])  # the claims' words: the verdict table
        axes.set_ylim(len(findings) - 0.5, -0.7)
        if any(line.get_label() == "the paper" for line in axes.lines):
            axes.legend(loc="lower right", fontsize="small")
    panels[0].set_title(shorten(f"{report.sweep_dir.name}: verdicts against row {report.baseline.index} "
                                f"({report.baseline.label})", 110), fontsize="medium")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")


def plot_differences(report: Report, path: Path) -> None:
    name = METRICS[report.plot_metric][1]
    figure = Figure(figsize=(8, 1.2 + 0.45 * len(report.rows)))
    axes = figure.subplots()
    claim_drawn = False
    for y, row in enumerate(report.rows):
        c = Comparison("", 0, 0, 0, 0.0, None, None, None, None) if row is report.baseline else None
        c = c or row.differences.get(report.plot_metric)
        if c is not None and c.estimate is not None:
            xerr = None if c.low is None else [[c.estimate - c.low], [c.high - c.estimate]]
            axes.errorbar(c.estimate, y, xerr=xerr, fmt="o", color="C0", capsize=4)
        claim = next((claim for claim in row.claims if claim.measure == "error"), None)
        value = None if claim is None else (claim.top1 if "top1" in report.plot_metric else claim.top5)
        if value is not None and not (claim.test_only and report.plot_metric.startswith("val/")):
            axes.plot(value, y, "D", color="C3", label=None if claim_drawn else "paper's claim")
            claim_drawn = True
    axes.axvline(0, color="grey", lw=0.8)
    axes.set_yticks(range(len(report.rows)))
    axes.set_yticklabels([short_label(report, row) for row in report.rows])
    axes.invert_yaxis()
    axes.set_xlabel(f"Δ {name} error, percentage points (variant minus baseline, {report.level} CI: paired t or Welch)")
    title = f"{report.sweep_dir.name}: baseline = row {report.baseline.index}, {report.baseline.label}"
    axes.set_title(shorten(title, 110), fontsize="medium")
    if claim_drawn:
        axes.legend(loc="best")
    figure.savefig(path, dpi=120, bbox_inches="tight")


# Up to this many lines, the legend goes inside the plot where it covers least; more, and it would cover the curves
LEGEND_INSIDE = 4


def place_legend(axes) -> None:
    """The legend of a line plot: inside it for a few lines, beside it (right of the axes) for more, where it covers
    no curve (the saved figure grows to hold it: bbox_inches="tight")."""
    if len(axes.get_lines()) <= LEGEND_INSIDE:
        axes.legend(loc="best", fontsize="small")
    else:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


# Lines drawn one over another stay visible: each its own marker and dash, the later ones thinner and on top
LINE_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", (0, (5, 1))), ("P", (0, (3, 1, 1, 1)))]


def distinguish_lines(axes) -> None:
    """Give every line of `axes` its own marker and dash pattern, and name in its legend label the line it lies on
    when two draw the same values (identical curves would otherwise hide each other with no hint)."""
    lines = list(axes.get_lines())
    for i, line in enumerate(lines):
        marker, dashes = LINE_STYLES[i % len(LINE_STYLES)]
        line.set_marker(marker)
        line.set_markersize(max(3.0, 6.0 - i))
        line.set_linestyle(dashes)
        line.set_linewidth(max(0.8, 2.0 - 0.3 * i))
        line.set_zorder(2 + i)
        same = [
            other.get_label()
            for other in lines[:i]
            if list(other.get_xdata()) == list(line.get_xdata())
            and all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(other.get_ydata(), line.get_ydata(), strict=True))
        ]
        if same:
            line.set_label(f"{line.get_label()} (the same values as {same[0]})")


def plot_curves(report: Report, path: Path) -> None:
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    for row in report.rows:
        by_epoch: dict[int, list[float]] = {}
        for run in row.runs:
            for epoch, value in run.curve:
                by_epoch.setdefault(epoch, []).append(value)
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        means = [statistics.fmean(by_epoch[e]) for e in epochs]
        (line,) = axes.plot(epochs, means, label=f"{short_label(report, row)} (n={len(row.runs)})")
        if len(row.runs) >= 2:
            spread = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) >= 2 else 0.0 for e in epochs]
            lower = [m - s for m, s in zip(means, spread, strict=True)]
            upper = [m + s for m, s in zip(means, spread, strict=True)]
            axes.fill_between(epochs, lower, upper, color=line.get_color(), alpha=0.2)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    several = any(len(row.runs) >= 2 for row in report.rows)  # no spread claimed where every row has one run
    axes.set_ylabel("val top-1 error, % " + ("(mean over seeds, ±1 std)" if several else "(one run each)"))
    distinguish_lines(axes)
    if axes.lines:
        place_legend(axes)
    figure.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="alexlab report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a Hydra multirun directory")
    parser.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]", help="the row to compare against")
    parser.add_argument("--metric", choices=list(METRICS), help="the metric of report_diff.png (default: test top-1)")
    parser.add_argument(
        "--source",
        choices=["runs", "wandb"],
        default="runs",
        help="read the numbers from each run's metrics.json (default) or from its offline W&B run file",
    )
    parser.add_argument("--threshold", type=float, metavar="PERCENT",
                        help="training error the steps count to (default: the sweep's hydra.sweeper.threshold, "
                             "else the paper's 25%%, or the lowest every run compared on speed reaches after its "
                             "first logged point)")  # fmt: skip
    parser.add_argument("--margin", type=float, metavar="POINTS",
                        help=f"no effect: the interval inside ±POINTS (default {DEFAULT_MARGIN}, or the seed rounds "
                             "sweep's hydra.sweeper.margin)")  # fmt: skip
    parser.add_argument("--ratio-margin", type=float, metavar="R",
                        help=f"no effect for a ratio: inside 1/R..R (default {DEFAULT_RATIO_MARGIN}, or the sweep's "
                             "hydra.sweeper.ratio_margin)")  # fmt: skip
    parser.add_argument("--confidence", type=float, metavar="LEVEL",
                        help="the intervals' level (default 0.95; for a seeds=auto sweep, 0.95 shared out over the "
                             "seed rounds it may have stopped after)")  # fmt: skip
    args = parser.parse_args(argv)
    report = build_report(args.sweep_dir, baseline=args.baseline, metric=args.metric, source=args.source,
                          threshold=args.threshold, margin=args.margin, ratio_margin=args.ratio_margin,
                          confidence=args.confidence)  # fmt: skip
    written = write_report(report)
    print(f"Baseline: row {report.baseline.index} ({report.baseline.label}), because {report.baseline_reason}.")
    if report.findings:
        print("\nVerdicts on the paper's claims:")
        print(verdict_table(report))
    print("\nConfigurations:")
    print(markdown_table(report))
    if report.unfinished:
        print(f"\n{len(report.unfinished)} run(s) not finished, not averaged in:")
        for run in report.unfinished:
            print(f"  {run.job}: {run.status}" + (f": {run.error}" if run.error else ""))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
