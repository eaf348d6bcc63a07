"""`alexlab report SWEEP_DIR`: what did each component buy? A verdict on each of the paper's claims, and a table.

Runs are the job directories of the sweep (children, or grandchildren, of SWEEP_DIR holding a metrics.json or a
.hydra/). Two runs are the same configuration when their switches and their other overrides (minus `seed=` and
`trial.*`) are equal; a row is a configuration. Per run the report reads, in percent or points:

- the errors: val top-1/top-5 at the best epoch (metrics.json `best`); the test errors after training (`final`):
  in the view test_views names (test/*), and in both views, the centre crop and the ten crops (test_centre/*,
  test_ten_crop/*, alexlab.metrics), which every run records;
- the held-out error on which the error claims are decided: the centre-view test top-1 error where every run of a
  comparison has one, else the validation top-1 error at the best epoch (also a centre view);
- the gap: final val top-1 error minus final train_eval top-1 error (training images evaluated as the validation
  images are, without dropout and augmentation), the generalisation gap at the end of training, and the loss gap
  measured the same way;
- the steps: optimiser steps until the training curve (metrics.json `curve`, the training error of every few
  batches; its clean error where the run measured one) first reaches the threshold, interpolated linearly between
  the curve's points, each point at the step whose weights it measured on average (`bin_centres`). A run is
  *censored* at the threshold, with no steps, when its curve never reaches it or is already there at its first point
  (the curve cannot say when it got there); a speed claim with a censored run stays `undecided`;
- its network's parameters and MACs (alexlab.info.network_size, from the config the run saved) and, for a network
  with LRN, the LRN's strength (alexlab.metrics.lrn_strength).

The paper's claims (alexlab.claims) are decided on the quantity the paper measured, where a comparison can test them:
a claim applies to a row that differs from the baseline in exactly that one switch (the ten-crop claim to the
baseline's own runs, its two test views); it is `confounded` where the two networks differ in parameters or MACs
that the switch is not meant to change, `not applicable` or `not testable here` where the claim cannot show (PCA
colour noise on grey images; LRN whose strength is below alexlab.claims.LRN_FLOOR; a speed claim from runs not
trained at a constant rate with a clean training curve). The others are read by alexlab.stats: each claim's
comparison (paired t over the seeds both rows ran, else Welch; a ratio on the log scale) at its share of 5% under
Holm's step-down over the study's claims, with repeated confidence intervals over the looks of a seeds=auto sweep:
`agrees`, `agrees, smaller` (than the claimed size), `contradicts`, `no effect` (inside +-margin: --margin points,
--ratio-margin for a ratio), `rules out the claimed size`, else `undecided` with the seeds per side that the
observed spread says would decide it. Beside each: of the seeds both rows ran, on how many the variant's held-out
error was lower. Runs that did not finish are listed, never averaged in.

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
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import shorten

import matplotlib
import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from alexlab import metrics, record
from alexlab.claims import ERROR, GAP, LRN_FLOOR, STEPS, WITHIN_RUN, Claim, claims_about
from alexlab.errors import BadFile, BadValue, NotFound
from alexlab.stats import (
    ALPHA,
    MAX_SEEDS_NEEDED,
    Claimed,
    Comparison,
    Looks,
    Reading,
    compare,
    read_claims,
    seeds_needed,
    seeds_won,
)
from alexlab.sweep import sweep_design

matplotlib.use("Agg")  # reports are written on headless machines; Optuna's plot goes through pyplot

HELD_OUT = "held_out"  # an error claim's measure: the centre-view test error, else val (module docstring)
CENTRE, TEN_CROP = metrics.metric(metrics.TEST_CENTRE, "top1_err"), metrics.metric(metrics.TEST_TEN_CROP, "top1_err")
# metric key in metrics.json -> (section it is read from, its name in the report)
METRICS = {
    "val/top1_err": ("best", "val top-1"),
    "val/top5_err": ("best", "val top-5"),
    "test/top1_err": ("final", "test top-1"),
    "test/top5_err": ("final", "test top-5"),
    CENTRE: ("final", "test top-1, centre view"),
    TEN_CROP: ("final", "test top-1, ten crops"),
}
TOP5 = ("val/top5_err", "test/top5_err")  # shown only for a data set of more than 10 classes
GAP_MEASURES = {GAP: ("top1_err", 100.0), "loss_gap": ("loss", 1.0)}  # quantity, scale (the errors in points)
LOSS_GAP = "loss_gap"
MEASURES = (*METRICS, GAP, LOSS_GAP, STEPS)
MEASURE_NAMES = {GAP: "gap (val - train_eval top-1)", LOSS_GAP: "loss gap (val - train_eval)",
                 STEPS: "steps to the threshold", HELD_OUT: "held-out top-1 (centre view)"}  # fmt: skip
PAPER_THRESHOLD = 25.0  # percent training error: the paper's Figure 1 (ReLU against tanh)
DEFAULT_MARGIN = 0.25  # points: below the paper's smallest claimed effect (overlapping pooling, 0.4 points)
DEFAULT_RATIO_MARGIN = 1.1  # a ratio of steps within 1/1.1 .. 1.1 is no effect
# What a claim that is not read is, instead of a verdict (alexlab.claims)
CONFOUNDED, NOT_APPLICABLE, NOT_TESTABLE = "confounded", "not applicable", "not testable here"
NOT_READ = (CONFOUNDED, NOT_APPLICABLE, NOT_TESTABLE)
# Statuses of the runs the report lists beside a record's (alexlab.record.Status)
NO_RECORD, UNREADABLE, UNIDENTIFIED, COPY, NO_WANDB = (
    "no metrics.json", "unreadable", "unidentified", "copy", "no W&B run")  # fmt: skip
WITHOUT_METRICS = (NO_RECORD, UNREADABLE)  # statuses of runs without a record to read numbers from
NOT_COMPONENTS = {"ablation"}  # a label for the run, not a part of the network: never counted as the change
FINISHED = record.Status.FINISHED.value


@dataclass
class Run:
    job: str  # the job directory, relative to the sweep dir
    status: str  # a record's (alexlab.record.Status), or one of the report's own (NO_RECORD, ...)
    error: str | None = None
    seed: int | None = None
    switches: dict[str, str | None] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # the overrides that are not switches, seed or trial.*
    values: dict[str, float] = field(default_factory=dict)  # METRICS key, GAP, LOSS_GAP, STEPS -> percent, steps
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val top-1 %)
    train_curve: list[tuple[float, float]] = field(default_factory=list)  # (step measured, training top-1 %)
    clean_curve: bool = False  # its training curve is the clean error (eval mode, a fixed sample), not as trained
    wall_time_s: float | None = None
    started: float | None = None  # Unix time, from the record: tells a copy of a run from a run
    censored: bool = False  # a training curve without steps to the (first) threshold (module docstring)
    steps: dict[float, float] = field(default_factory=dict)  # threshold -> steps to it
    censored_at: dict[float, str] = field(default_factory=dict)  # threshold -> "never" or "first" (censored)
    from_hydra: bool = False  # switches read from .hydra/ (identify_from_hydra), which names more groups than ours
    config: dict = field(default_factory=dict)  # the composed config the run saved (.hydra/config.yaml)
    lrn_strength: float | None = None  # the strongest LRN of its network at its last validation
    parameters: int | None = None  # of the network it trained, as its record says
    macs: int | None = None


@dataclass
class Summary:
    values: list[float]
    mean: float | None  # for STEPS the geometric mean
    std: float | None  # sample (ddof=1); None when fewer than 2 values


@dataclass
class Finding:
    """A claim of the paper decided on one row against the baseline (or, within_run, on the baseline's own runs)."""

    change: str  # "lrn on->off"
    claim: Claim
    measure: str  # the metrics key, GAP or STEPS it was decided on
    comparison: Comparison
    verdict: str  # stats.VERDICTS, or NOT_READ with `reason`
    reading: Reading | None = None  # None for a claim not read
    reason: str = ""  # why a claim is not read, or what a verdict rests on beyond its interval
    seeds_won: tuple[float, int] = (0.0, 0)  # (won, compared): the variant's held-out error lower, of the seeds
    seeds_needed: int | None = None  # per side, for an undecided verdict
    row_index: int = 0
    censored: int = 0  # a speed claim: runs of the two rows without steps to the threshold (module docstring)
    loss_gap: Comparison | None = None  # a gap claim: the loss gap's comparison, shown beside the error gap's
    threshold: float | None = None  # a speed claim: the training error its steps count to
    # a speed claim with runs counted at their curve's end: which end of its interval holds, variant minus baseline:
    # +1 the low end (the variant's runs never got there), -1 the high end (the baseline's), 2 neither; 0 both
    bounded: int = 0
    clean: bool = False  # a speed claim read on the clean training error (eval mode, a fixed sample)

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"

    @property
    def negligible(self) -> bool:
        return self.reading is not None and self.reading.negligible

    @property
    def shown_verdict(self) -> str:
        """The verdict as the tables and plots show it: "agrees, negligible" where the sign is decided and the band
        lies inside the margin; a claim not read with its reason."""
        if self.verdict in NOT_READ:
            return f"{self.verdict}: {self.reason}"
        if self.negligible and self.verdict in ("agrees", "contradicts"):
            return f"{self.verdict}, negligible"
        return self.verdict if self.verdict != "agrees, smaller" else "agrees, smaller than claimed"

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """The interval the verdict was read from (the sign interval, on the comparison's scale)."""
        return self.reading.sign if self.reading is not None else (None, None)

    @property
    def level(self) -> str:
        return level_name(1 - self.reading.alpha) if self.reading is not None else ""

    @property
    def measured(self) -> str:
        """variant minus baseline (or the ratio) with the interval it was read from, as the tables show it."""
        c = self.comparison
        if c.estimate is None:
            return "no runs to compare"
        low, high = self.interval
        if self.measure == STEPS:
            point = f"x{math.exp(c.estimate):.2f}"
            if low is not None and self.bounded in (1, -1):  # runs counted at their curve's end: one end holds
                bound = f"at least x{math.exp(low):.2f}" if self.bounded == 1 else f"at most x{math.exp(high):.2f}"
                return f"{point} [{bound}]"
            return point + ("" if low is None else f" [{math.exp(low):.2f}, {math.exp(high):.2f}]")
        return f"{c.estimate:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]")


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
    size: tuple[int, int] | None = None  # (parameters, MACs per image) of its network, where its config says


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
    threshold: float  # percent training error of STEPS (the first of `thresholds`, the tables')
    threshold_reason: str
    margin: float
    ratio_margin: float
    study: StudySummary | None = None  # for an Optuna sweep
    looks: Looks = field(default_factory=Looks)  # the seed rounds after which the sweep may have stopped
    alpha: float = ALPHA  # the study's error rate, shared out over its claims
    top5: bool = True  # a data set of more than 10 classes: top-5 errors are shown
    thresholds: tuple[float, ...] = ()  # every training error the speed claims are read at (a finding each)

    @property
    def level(self) -> str:
        """The verdicts' intervals' level: one for all of them (their shares are equal), else "per claim"."""
        levels = {f.level for f in self.findings if f.reading is not None}
        return levels.pop() if len(levels) == 1 else "per claim" if levels else level_name(1 - self.alpha)

    @property
    def unfinished(self) -> list[Run]:
        return [run for run in self.runs if run.status != FINISHED]

    @property
    def findings(self) -> list[Finding]:
        return [finding for row in self.rows for finding in row.findings]

    def undecided(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.decided]


def build_report(
    sweep_dir: str | Path,
    baseline: str | None = None,
    metric: str | None = None,
    source: str = "runs",
    threshold: float | list[float] | None = None,
    margin: float | None = None,
    ratio_margin: float | None = None,
    alpha: float | None = None,
) -> Report:
    """source "runs": each job's metrics.json; "wandb": each job's offline W&B run file (the same numbers).
    threshold: percent training error for the steps, or several (a finding each; None: see the module docstring).
    margin, ratio_margin: of no
    effect (None: as the seed rounds sweep that wrote the directory decided, else DEFAULT_*). alpha: the study's
    error rate (5%), shared out over its claims and looks (alexlab.stats)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise NotFound(f"sweep directory not found: {sweep_dir}")
    if metric is not None and metric not in METRICS:
        raise BadValue(f"unknown metric {metric}; choose one of: {', '.join(METRICS)}")
    check_options(threshold, margin, ratio_margin, alpha)
    design = sweep_design(sweep_dir / "multirun.yaml")
    check_options(
        design.threshold, design.margin, design.ratio_margin, None, f"{sweep_dir}/multirun.yaml: hydra.sweeper."
    )
    chosen = "chosen with --threshold" if threshold is not None else "the sweep's, hydra.sweeper.threshold"
    threshold = design.threshold if threshold is None else threshold
    margin = next(m for m in (margin, design.margin, DEFAULT_MARGIN) if m is not None)
    ratio_margin = next(m for m in (ratio_margin, design.ratio_margin, DEFAULT_RATIO_MARGIN) if m is not None)
    alpha = ALPHA if alpha is None else float(alpha)
    runs = read_runs(sweep_dir, source)
    if not runs:
        raise BadValue(f"{sweep_dir} holds no runs (no sub-directory with a metrics.json or .hydra/)")
    known = set().union(*(run.switches for run in runs if not run.from_hydra))
    for run in runs:
        if known and run.switches and run.from_hydra:  # Hydra's choices name more groups: keep ours
            run.switches = {k: run.switches.get(k) for k in known}
        run.settings = settings_of(run.overrides, run.switches)
    rows = group_rows([run for run in runs if run.switches or run.settings])
    if not rows:
        raise BadValue(f"{sweep_dir} holds no run whose configuration can be read (no switches, no .hydra/)")
    keys = sorted({k for row in rows for k in (*row.switches, *row.settings)})
    columns = [k for k in keys if len({config_value(row, k) for row in rows}) > 1]
    for row in rows:
        row.label = ", ".join(f"{k}={shown(config_value(row, k))}" for k in columns) or "all runs"
        row.size = network_size_of(row)
    if baseline is None and design.baseline:
        base, reason = choose_baseline(rows, columns, sweep_dir, design.baseline)
        reason = f"the sweep's hydra.sweeper.baseline ({design.baseline})"
    else:
        base, reason = choose_baseline(rows, columns, sweep_dir, baseline)
    for row in rows:
        row.change, row.claims = paper_claims(row, base)
    speed_rows = [base, *(row for row in rows if any(claim.measure == STEPS for claim in row.claims))]
    wanted = as_thresholds(threshold)
    main_threshold, threshold_reason = choose_threshold(speed_rows if len(speed_rows) > 1 else rows,
                                                        wanted[0] if wanted else None, chosen)  # fmt: skip
    thresholds = (main_threshold, *wanted[1:])
    for run in runs:
        for t in thresholds:
            steps = steps_to(run.train_curve, t)
            if steps is not None:
                run.steps[t] = steps
            elif run.train_curve:
                run.censored_at[t] = "first" if run.train_curve[0][1] <= t else "never"
        if main_threshold in run.steps:
            run.values[STEPS] = run.steps[main_threshold]
        run.censored = main_threshold in run.censored_at
    threshold = main_threshold
    for row in rows:
        row.summaries = {m: summarize([run.values[m] for run in row.runs if m in run.values], m) for m in MEASURES}
    for row in rows:
        if row is not base:
            row.differences = {m: compare(*paired_values(row, base, m), log_scale=m == STEPS) for m in MEASURES}
        row.findings = [f for claim in row.claims for f in findings(row, base, claim, thresholds)]
    decide_study([f for row in rows for f in row.findings], design.looks, alpha, margin, ratio_margin)
    if metric is None:
        metric = "test/top1_err" if any("test/top1_err" in run.values for run in runs) else "val/top1_err"
    study = read_study(sweep_dir) if (sweep_dir / "optuna_study.yaml").exists() else None
    top5 = any(classes_of(run) is None or classes_of(run) > 10 for run in runs if run.status == FINISHED)
    return Report(sweep_dir, rows, base, reason, columns, runs, metric, threshold, threshold_reason, margin,
                  ratio_margin, study, design.looks, alpha, top5, thresholds)  # fmt: skip


def as_thresholds(threshold) -> list[float]:
    """--threshold / hydra.sweeper.threshold as a list of training errors in percent: a number, several, or none."""
    if threshold is None:
        return []
    values = list(threshold) if isinstance(threshold, (list, tuple)) else [threshold]
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        raise BadValue(f"a threshold is a training error in percent, got {threshold!r}") from None


def check_options(
    threshold: float | None,
    margin: float | None,
    ratio_margin: float | None,
    alpha: float | None,
    prefix: str = "--",
) -> None:
    """The report's options, given on its command line (prefix "--": --ratio-margin) or to a seed rounds sweep
    (prefix "hydra.sweeper.": hydra.sweeper.ratio_margin): one line naming the bad one. None: not given."""
    name = lambda key: prefix + (key.replace("_", "-") if prefix == "--" else key)
    for value in as_thresholds(threshold):
        if not 0 < value < 100:
            raise BadValue(f"{name('threshold')} is a training error in percent, between 0 and 100; got {value:g}")
    if margin is not None and not (0 <= margin < math.inf):
        raise BadValue(f"{name('margin')} must be a finite number of points >= 0, got {margin}")
    if ratio_margin is not None and not (1 <= ratio_margin < math.inf):
        raise BadValue(f"{name('ratio_margin')} must be a finite ratio >= 1, got {ratio_margin}")
    if alpha is not None and not 0 < alpha < 0.5:
        raise BadValue(f"{name('alpha')} is the study's error rate, between 0 and 0.5 (0.05 for 5%), got {alpha}")


# --- the claims: which apply, which can be read, and how they are read ------------------------------------------


def paper_claims(row: Row, base: Row) -> tuple[str, tuple[Claim, ...]]:
    """The one switch change of `row` against the baseline ("lrn on->off") and the paper's claims about it; for the
    baseline, the claim it holds within its own runs (ten crops against the centre view), where they recorded both."""
    if row is base:
        switch, before, after = WITHIN_RUN
        both = row.runs and all(CENTRE in run.values and TEN_CROP in run.values for run in row.runs)
        return (f"{switch} {before}->{after} (within each run)", claims_about(*WITHIN_RUN)) if both else ("", ())
    keys = (set(row.switches) | set(base.switches)) - NOT_COMPONENTS
    changed = [k for k in sorted(keys) if row.switches.get(k) != base.switches.get(k)]
    if len(changed) != 1 or row.settings != base.settings:
        return "", ()
    (key,) = changed
    before, after = base.switches.get(key), row.switches.get(key)
    claims = claims_about(key, before, after)
    if key == WITHIN_RUN[0] and base.runs and all(CENTRE in r.values and TEN_CROP in r.values for r in base.runs):
        claims = ()  # both views are in every run: the claim is read within the baseline's runs instead
    return f"{key} {before}->{after}", claims


def findings(row: Row, base: Row, claim: Claim, thresholds: tuple[float, ...]) -> list[Finding]:
    """One claim on one row: its measure compared (paired where seeds match), and why it cannot be read, if it
    cannot; a speed claim once for each threshold. The verdicts come together, over the study (decide_study)."""
    centre = by_seed(row, CENTRE)
    if claim.within_run:  # the baseline's own runs, or (runs that tested one view) the test_views row against it
        ten_crop = by_seed(base, TEN_CROP)
        found = [Finding(row.change, claim, TEN_CROP, compare(centre, ten_crop), "undecided", row_index=row.index,
                         seeds_won=seeds_won(centre, ten_crop))]  # fmt: skip
    elif claim.measure == STEPS:
        found = [speed_finding(row, base, claim, t) for t in thresholds]
    else:
        measure = held_out(row, base) if claim.measure == ERROR else claim.measure
        found = [Finding(row.change, claim, measure, row.differences[measure], "undecided", row_index=row.index)]
        if measure == GAP:
            found[0].loss_gap = row.differences.get(LOSS_GAP)
    why_not = not_read(row, base, claim)
    for f in found:
        if not claim.within_run:
            f.seeds_won = seeds_won(*paired_values(row, base, held_out(row, base)))
        if why_not:
            f.verdict, f.reason = why_not
    return found


def speed_finding(row: Row, base: Row, claim: Claim, threshold: float) -> Finding:
    """A speed claim at one threshold: the steps of the two rows' runs as a ratio, a run that never got there counted
    at the last step its curve measured (at least that many steps), so that it still informs the verdict; which end of
    the interval then holds (`bounded`, alexlab.stats.read). A run already there at its first point cannot be counted:
    the claim is left undecided."""
    (variant, v_never, v_first), (baseline, b_never, b_first) = steps_of(row, threshold), steps_of(base, threshold)
    comparison = compare(variant, baseline, log_scale=True)
    found = Finding(row.change, claim, STEPS, comparison, "undecided", row_index=row.index, threshold=threshold,
                    censored=v_never + v_first + b_never + b_first,
                    clean=all(run.clean_curve for run in (*row.runs, *base.runs)))  # fmt: skip
    if v_first or b_first or (v_never and b_never):
        found.bounded = 2  # no end of the interval holds: undecided
    elif v_never or b_never:  # the variant's steps (v_never) or the baseline's are at least what is counted
        found.bounded = 1 if v_never else -1
    return found


def steps_of(row: Row, threshold: float) -> tuple[dict, int, int]:
    """The row's steps to `threshold` keyed by seed (by_seed's keys), a run that never got there at the last step of
    its curve; and how many runs never got there, and how many were there at their first point (not counted)."""
    seeds = Counter(run.seed for run in row.runs)
    values, never, first = {}, 0, 0
    for run in row.runs:
        key = run.seed if run.seed is not None and seeds[run.seed] == 1 else f"job {run.job}"
        kind = run.censored_at.get(threshold)
        if threshold in run.steps:
            values[key] = run.steps[threshold]
        elif kind == "never" and run.train_curve[-1][0] > 0:
            values[key], never = run.train_curve[-1][0], never + 1
        elif kind is not None:
            first += 1
    return values, never, first


def not_read(row: Row, base: Row, claim: Claim) -> tuple[str, str] | None:
    """(CONFOUNDED, NOT_APPLICABLE or NOT_TESTABLE, why) where the comparison cannot test the claim (alexlab.claims);
    None where it can."""
    if not claim.resizes and row is not base and row.size and base.size:
        (p, m), (p0, m0) = row.size, base.size
        if p != p0 or (m is not None and m0 is not None and m != m0):
            macs = f", {m / 1e6:.3g} M against {m0 / 1e6:.3g} M MACs" if m and m0 else ""
            return CONFOUNDED, f"the networks differ in more than the switch: {p:,} against {p0:,} parameters{macs}"
    runs = [*row.runs, *base.runs]
    if claim.needs_colour and any(channels_of(run) == 1 for run in runs):
        return NOT_APPLICABLE, "PCA colour noise on single-channel images is one brightness shift, not colour"
    if claim.needs_lrn:
        with_lrn = [run for run in runs if run.lrn_strength is not None]
        if not with_lrn:
            scale = {str(run.config.get("data", {}).get("scale", "unit")) for run in runs}
            return NOT_TESTABLE, (f"the LRN's strength was not recorded (inputs at data.scale={'/'.join(scale)}); "
                                  f"it is read where alpha * sum a^2 / k reaches {LRN_FLOOR:g}")  # fmt: skip
        strength = statistics.fmean(run.lrn_strength for run in with_lrn)
        if strength < LRN_FLOOR:
            return NOT_TESTABLE, (
                f"the LRN divides by a near constant: alpha * sum a^2 / k is {strength:.2g} on "
                f"average, below {LRN_FLOOR:g} (the inputs' scale: data.scale=raw is the paper's)"
            )
    if claim.measure == STEPS:
        rates = {schedule_of(run) for run in runs}
        if rates != {"constant"}:
            return NOT_TESTABLE, (f"steps to a training error need a constant learning rate (these runs: "
                                  f"{', '.join(sorted(map(str, rates)))} schedule) and a clean training curve, as "
                                  "the paper's Figure 1: alexlab sweep relu_speed / dropout_speed")  # fmt: skip
        if not all(run.clean_curve for run in runs):
            return NOT_TESTABLE, ("steps to a training error need the clean training error (eval mode, a fixed "
                                  "sample: train_clean_every), not the error as trained with dropout and "
                                  "augmentation")  # fmt: skip
    return None


def decide_study(findings: list[Finding], looks: Looks, alpha: float, margin: float, ratio_margin: float) -> None:
    """The verdicts of every claim that can be read, together (alexlab.stats.read_claims: Holm's step-down over the
    claims, repeated intervals over the looks); a speed claim with a censored run stays undecided."""
    readable = [f for f in findings if f.verdict not in NOT_READ]
    items = [(f.comparison, claimed(f, margin, ratio_margin)) for f in readable]
    bounds = [f.bounded * f.claim.direction if f.bounded in (1, -1) else f.bounded for f in readable]  # claim side up
    for f, (comparison, claim), reading in zip(readable, items, read_claims(items, looks, alpha, bounds), strict=True):
        f.reading, f.verdict = reading, reading.verdict
        if f.verdict == "undecided" and not f.censored:
            f.seeds_needed = seeds_needed(comparison, claim, reading.alpha, looks)


def claimed(f: Finding, margin: float, ratio_margin: float) -> Claimed:
    """What a finding's comparison is read against, on its own scale (points, or a log ratio)."""
    claim = f.claim
    if f.measure == STEPS:
        size = abs(math.log(claim.ratio)) if claim.ratio else None
        return Claimed(claim.direction, size, math.log(ratio_margin))
    size = abs(claim.top1) if claim.top1 is not None and claim.measure == ERROR else None
    return Claimed(claim.direction, size, margin)


def held_out(row: Row, base: Row) -> str:
    """The held-out error an error claim is read on: the centre-view test error where every run of both rows has
    one, else the validation error at the best epoch (both centre views)."""
    runs = [*row.runs, *base.runs]
    return CENTRE if runs and all(CENTRE in run.values for run in runs) else "val/top1_err"


def network_size_of(row: Row) -> tuple[int, int | None] | None:
    """(parameters, MACs) of a row's network: as its first finished run's record says them, else as the config it
    saved builds it (alexlab.info.network_size) where that gives the parameters the record says, which a record
    written by an older network would not (its MACs then stay unknown); None where unknown."""
    run = next((run for run in row.runs if run.parameters or run.config.get("model")), None)
    if run is None:
        return None
    if run.parameters and run.macs:
        return run.parameters, run.macs
    built = built_size(run.config)
    if built is None:
        return (run.parameters, None) if run.parameters else None
    if run.parameters and built[0] != run.parameters:
        return run.parameters, None
    return built


def built_size(config: dict) -> tuple[int, int] | None:
    """(parameters, MACs) of the network a run's saved config builds; None where it cannot be built."""
    from omegaconf import OmegaConf

    from alexlab.info import network_size

    try:
        return network_size(OmegaConf.to_container(OmegaConf.create(config).model, resolve=True))
    except Exception:  # noqa: BLE001 -- a config of another version or a model that cannot be built: size unknown
        return None


def channels_of(run: Run) -> int | None:
    return _integer(run.config.get("data", {}).get("channels"))


def classes_of(run: Run) -> int | None:
    return _integer(run.config.get("data", {}).get("num_classes"))


def schedule_of(run: Run) -> str | None:
    schedule = run.config.get("schedule")
    return schedule.get("name") if isinstance(schedule, dict) else None


def _integer(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- reading the runs ---------------------------------------------------------------------------------------------


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    def is_job(path: Path) -> bool:
        return (path / record.RECORD).exists() or (path / ".hydra").is_dir()

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
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=NO_RECORD, config=record.saved_config(job_dir))
    try:
        ended = record.read(job_dir)
    except BadFile as exc:
        ended = None
        run.status, run.error = UNREADABLE, str(exc)
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
            run.status, run.error = UNIDENTIFIED, "its record names no switches and it has no .hydra/ files"
    run.wall_time_s = ended.wall_time_s if finite(ended.wall_time_s) else None
    run.parameters, run.macs = ended.parameters, ended.macs
    for key, (section, _) in METRICS.items():
        value = getattr(ended, section).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    one_view(run)
    gaps(run, ended.final)
    for entry in ended.history:
        if finite(entry.get("val/top1_err")) and finite(entry.get("epoch")):
            run.curve.append((int(entry["epoch"]), 100.0 * entry["val/top1_err"]))
    strengths = [v for k, v in ended.final.items() if k.startswith("lrn/") and finite(v)]
    run.lrn_strength = max(strengths) if strengths else None
    run.clean_curve = bool(ended.clean_curve)
    if run.clean_curve:  # measured at exactly its step's weights: no bin to centre
        clean = [(entry.get("step"), entry.get(CLEAN_ERROR)) for entry in ended.clean_curve]
        run.train_curve = [(float(step), 100.0 * error) for step, error in clean if finite(step) and finite(error)]
    else:
        run.train_curve = training_curve([(entry.get("step"), entry.get("train/top1_err")) for entry in ended.curve])
    return run


CLEAN_ERROR = metrics.metric(metrics.TRAIN_CLEAN, "top1_err")


def one_view(run: Run) -> None:
    """A record from before every run tested both views: its test error is the view its test_views names."""
    view = {"centre": CENTRE, "ten_crop": TEN_CROP}.get(run.switches.get("test_views"))
    if view is not None and view not in run.values and "test/top1_err" in run.values:
        run.values[view] = run.values["test/top1_err"]


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
            run.status = COPY
            run.error = f"a copy of {seen[key]} (the same overrides, seed and start time): counted once"
        else:
            seen[key] = run.job


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_wandb_run(job_dir: Path, sweep_dir: Path) -> Run:
    """A job's numbers from its W&B run file (alexlab.wandb_runs), chosen as metrics.json chooses them: val errors at
    the epoch of the lowest val top-1 error, test errors as logged, the gaps from the last epoch, the training curve
    from its curve/* rows. A job resumed after an interruption holds a W&B run per stint: they count as one
    (wandb_runs.job_run), every epoch with the stint that trained it last."""
    from alexlab.wandb_runs import find_runs, job_run

    found = find_runs(job_dir)
    if not found:
        run = read_run(job_dir, sweep_dir)  # identifies the job; its numbers are not taken from metrics.json
        run.values, run.curve, run.train_curve = {}, [], []
        run.status, run.error = NO_WANDB, "no run-*.wandb file in the job directory (logger without wandb?)"
        return run
    wandb_run = job_run(found)
    config, summary = wandb_run.config, wandb_run.summary
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=summary.get("status") or wandb_run.state)
    run.error = summary.get("error")
    reserved = {"seed", "overrides", "git_commit", "git_dirty", "config", "_wandb"}
    run.switches = {k: none_or_str(v) for k, v in config.items() if k not in reserved}
    run.overrides = list(config.get("overrides") or [])
    run.seed = config.get("seed")
    run.config = config.get("config") if isinstance(config.get("config"), dict) else record.saved_config(job_dir)
    validations = [row for row in wandb_run.history if finite(row.get("val/top1_err"))]
    best = min(validations, key=lambda row: row["val/top1_err"]) if validations else {}
    for key, (section, _) in METRICS.items():
        value = (best if section == "best" else summary).get(key)
        if finite(value):
            run.values[key] = 100.0 * value
    one_view(run)
    last = validations[-1] if validations else {}
    gaps(run, last)
    strengths = [v for k, v in last.items() if str(k).startswith("lrn/") and finite(v)]
    run.lrn_strength = max(strengths) if strengths else None
    run.curve = [(int(row["epoch"]), 100.0 * row["val/top1_err"]) for row in validations]
    clean = [(row.get("trainer/global_step"), row["curve/train_clean_top1_err"]) for row in wandb_run.history
             if finite(row.get("curve/train_clean_top1_err"))]  # fmt: skip
    run.clean_curve = bool(clean)
    if run.clean_curve:  # as read_run reads the record's clean_curve
        run.train_curve = [(float(step), 100.0 * error) for step, error in clean if finite(step)]
    else:  # the curve's rows: those that log it (others log the epochs' metrics)
        run.train_curve = training_curve(
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
        (row.runs if run.status == FINISHED else row.unfinished).append(run)
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
    if measure in METRICS:
        return METRICS[measure][1] + " error"
    return MEASURE_NAMES[measure]


def finding_measure(f: Finding) -> str:
    """What a finding was decided on, for people."""
    if f.claim.within_run:
        same = " (same runs)" if f.change.endswith("(within each run)") else ""
        return f"test top-1, centre view against ten crops{same}"
    if f.measure == "val/top1_err" and f.claim.measure == ERROR:
        return "val top-1 error (centre view; no centre-view test error in these runs)"
    if f.measure == CENTRE:
        return "held-out test top-1 error, centre view"
    if f.measure == STEPS and f.threshold is not None:
        return f"steps to {f.threshold:g}% training error" + (" (clean)" if f.clean else "")
    return measure_name(f.measure)


def shown_measures(report: Report) -> list[str]:
    """The measures the tables show: those some run has, top-5 only for more than 10 classes."""
    return [m for m in MEASURES if any(m in run.values for run in report.runs) and (report.top5 or m not in TOP5)]


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


def cell_seeds_won(f: Finding) -> str:
    """Of the seeds both sides ran, on how many the variant's held-out error was lower."""
    won, compared = f.seeds_won
    return f"{won:g} of {compared}" if compared else ""


def cell_seeds_needed(finding: Finding) -> str:
    if finding.verdict != "undecided":
        return ""
    if finding.bounded == 2:
        return f"? ({finding.censored} runs censored: another threshold)"
    if finding.seeds_needed is None:
        return "? (no spread yet)"
    return f"> {MAX_SEEDS_NEEDED}" if finding.seeds_needed > MAX_SEEDS_NEEDED else str(finding.seeds_needed)


def cell_measured(report: Report, f: Finding) -> str:
    """The measured change with the interval it was read from (its level where the claims' levels differ); the loss
    gap beside a gap claim's error gap; a claim not read shows its point estimate only."""
    if f.verdict in NOT_READ:
        c = f.comparison
        if c.estimate is None:
            return "no runs to compare"
        return f"x{math.exp(c.estimate):.2f}" if f.measure == STEPS else f"{c.estimate:+.2f}"
    cell = f.measured + (f" ({f.level})" if report.level == "per claim" and f.level else "")
    if f.loss_gap is not None and f.loss_gap.estimate is not None:
        cell += f"; loss gap {f.loss_gap.estimate:+.3f}"
    return cell


def verdict_table(report: Report) -> str:
    level = report.level
    header = ["change", "the paper", "measured on", "paper's Δ", f"measured Δ [{level}]", "test"]
    header += ["seeds won (held-out error)", "verdict", "seeds to decide"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in report.findings:
        cells = [f.change, f.claim.paper, finding_measure(f), f.claim.expected(report.top5), cell_measured(report, f)]
        cells += [test_name(f.comparison), cell_seeds_won(f), f"**{f.shown_verdict}**", cell_seeds_needed(f)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def markdown_table(report: Report) -> str:
    measures = shown_measures(report)
    header = ["#", *report.columns, "n", "seeds", "parameters", "MACs", "s a run"]
    for measure in measures:
        name = MEASURE_NAMES.get(measure) or METRICS[measure][1]
        if measure == STEPS:
            header += [f"steps to {report.threshold:g}%", "ratio [95% CI]"]
        else:
            header += [f"{name}" + (" %" if measure in METRICS else ""), f"Δ {name} [95% CI]"]
    header.append("paper's Δ (claim)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        seeds = ", ".join(str(run.seed) for run in row.runs)
        n = f"{len(row.runs)}" + (f" (+{len(row.unfinished)} unfinished)" if row.unfinished else "")
        cells = [f"{row.index}" + (" (baseline)" if row is report.baseline else "")]
        cells += [shown(config_value(row, k)) for k in report.columns] + [n, seeds]
        size = row.size or (None, None)
        cells += ["" if size[0] is None else f"{size[0]:,}", "" if size[1] is None else f"{size[1] / 1e6:.3g} M"]
        cells.append(f"{wall_time(row):.0f}" if wall_time(row) is not None else "")
        for measure in measures:
            summary = cell_summary(row.summaries[measure], measure)
            censored = sum(run.censored for run in row.runs) if measure == STEPS else 0
            summary += f" (+{censored} censored)" if censored else ""
            cells += [summary.strip(), cell_difference(row, report.baseline, measure)]
        cells.append("; ".join(f"{row.change}: {claim.expected(report.top5)}" for claim in row.claims))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wall_time(row: Row) -> float | None:
    """The mean wall time of a row's finished runs, seconds: what a run of the configuration costs."""
    times = [run.wall_time_s for run in row.runs if run.wall_time_s is not None]
    return statistics.fmean(times) if times else None


def method_text(report: Report) -> str:
    return (
        "Errors in percent, mean ± sample std (ddof=1) over seeds; val at the best epoch, test after training, in "
        "the view test_views names and, where the runs recorded them, in both views (centre crop; ten crops). "
        + ("" if report.top5 else "Top-5 errors are left out: with 10 classes they say little. ")
        + "The gap is the final val top-1 error minus the final train_eval top-1 error (training images evaluated as "
        "the validation images are), in points; the loss gap the same for the loss. Steps: optimiser steps until the "
        f"training curve first reaches {report.threshold:g}% training error ({report.threshold_reason}), geometric "
        "mean (x/ its spread), compared as a ratio; a run whose curve never reaches the threshold, or is already "
        "there at its first point, is censored. Parameters and MACs (multiply-accumulates per image) of each "
        "configuration's network, from the config its runs saved; s a run: the mean wall time of its runs. Δ = variant "
        "minus baseline (a ratio for the steps) "
        "with a plain 95% interval in this table: paired t over the seeds both rows ran (runs of one seed share "
        "their data order, split, augmentation and init), Welch t where fewer than two seeds match, n/a with fewer "
        "than two runs."
    )


def verdicts_text(report: Report) -> str:
    """How the verdicts were read: what each says, the intervals' levels and why (alexlab.stats)."""
    read = [f for f in report.findings if f.reading is not None]
    shares = sorted({f.reading.alpha for f in read}, reverse=True)
    share_text = ", ".join(f"{100 * a:.3g}%" for a in shares) or "none"
    looks = report.looks
    if looks.first < looks.last:
        look_text = (
            f"This seeds=auto sweep looks at its verdicts after each seed round from {looks.first} to {looks.last} "
            f"seeds and stops once they are decided, so each interval is a repeated confidence interval: O'Brien-"
            "Fleming-type alpha spending (Lan and DeMets) over those looks, the critical value at a claim's number of "
            "seeds that of its look, so that stopping at the first decided look does not raise the error rate."
        )
    else:
        look_text = "The sweep ran a fixed number of seeds: one look, plain t intervals."
    return (
        f"The chance of any wrong verdict in this study is held at {100 * report.alpha:g}% over all its "
        f"{len(read)} claims that can be read (Holm's step-down: each claim at "
        f"{100 * report.alpha:g}% over the claims not yet fully resolved; shares here: {share_text}). "
        f"{look_text} A claim is read from two intervals at its share alpha: the sign interval at 1 - alpha (shown; "
        "agrees / contradicts where it excludes 0 on the claim's side / the other side) and the band at 1 - 2 alpha "
        f"(no effect where it lies inside ±{report.margin:g} points or a ratio within "
        f"1/{report.ratio_margin:g}..{report.ratio_margin:g}, the two one-sided tests of equivalence; smaller than "
        "claimed where its claim-side end falls short of the paper's number: `agrees, smaller than claimed` with a "
        "sign that agrees, `rules out the claimed size` with the sign open); else undecided, with the seeds per "
        "side the observed spread says would decide it. `negligible`: a decided sign inside the margin. A claim "
        "whose two networks differ in parameters or MACs beyond its switch is confounded; PCA colour noise on grey "
        f"images is not applicable; LRN is not testable where its strength (alpha * sum a^2 / k) is below "
        f"{LRN_FLOOR:g}, a speed claim without a constant learning rate and a clean training curve: these are not "
        "read and not counted among the claims. Error claims are read on the held-out error of the view every "
        "network was trained to see (centre crop: test where every run recorded it, else val); the ten-crop claim "
        "on the two views of each run. Seeds won: of the seeds both rows ran, on how many the variant's held-out "
        "error was lower."
    )


def level_name(confidence: float) -> str:
    """An interval's level as the tables name it: "95%", "99.4%", never rounded up to "100%"."""
    digits = next(d for d in range(3, 12) if float(f"{100 * confidence:.{d}g}") < 100)
    return f"{100 * confidence:.{digits}g}%"


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
        order = ("agrees", "agrees, smaller", "contradicts", "no effect", "rules out the claimed size", *NOT_READ,
                 "undecided")  # fmt: skip
        tally = ", ".join(f"{verdicts[v]} {v}" for v in order if verdicts[v])
        lines += ["## Verdicts on the paper's claims", "", f"{len(report.findings)} claims: {tally}.", ""]
        lines += [verdict_table(report), "", verdicts_text(report), ""]
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
    """A row per configuration: its network's size; each measure's mean, std, difference against the baseline with
    its plain 95% interval, the test that gave it and its degrees of freedom (steps: geometric mean, std of the logs,
    ratio), and the verdicts."""
    header = ["row", "label", "is_baseline", *report.columns, "n", "seeds", "n_unfinished", "parameters", "macs",
              "wall_time_s"]  # fmt: skip
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
            cells += list(row.size) if row.size else ["", ""]
            cells.append(number(wall_time(row)))
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
            errors = [claim for claim in row.claims if claim.measure == ERROR]
            cells += [
                row.change,
                number(errors[0].top1 if errors else None),
                number(errors[0].top5 if errors and report.top5 else None),
            ]
            cells += ["; ".join(claim.paper for claim in row.claims)]
            cells += ["; ".join(f"{measure_name(f.measure)}: {f.shown_verdict}" for f in row.findings)]
            writer.writerow(cells)


def write_verdicts_csv(report: Report, path: Path) -> None:
    """A row per claim: what was compared, the estimate with the intervals it was read from (sign, band) and the
    share of the error rate they were read at, the seeds won, the verdict (with why, for a claim not read) and the
    seeds that would decide it; the two networks' sizes."""
    header = ["row", "change", "claim", "measure", "paper_expected", "estimate", "ci_low", "ci_high", "band_low",
              "band_high", "alpha", "scale", "test", "n_variant", "n_baseline", "n_pairs", "seeds_won",
              "seeds_compared", "verdict", "reason", "seeds_needed", "threshold", "margin", "ratio_margin",
              "negligible", "censored", "looks", "parameters", "baseline_parameters", "macs",
              "baseline_macs"]  # fmt: skip
    sizes = {row.index: row.size or (None, None) for row in report.rows}
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for finding in report.findings:
            c, steps = finding.comparison, finding.measure == STEPS
            scaled = (lambda v: None if v is None else math.exp(v)) if steps else (lambda v: v)
            sign = finding.reading.sign if finding.reading else (None, None)
            band = finding.reading.band if finding.reading else (None, None)
            won, compared = finding.seeds_won
            looks = f"{report.looks.first}..{report.looks.last}" if report.looks.first < report.looks.last else "1"
            writer.writerow([
                finding.row_index, finding.change, finding.claim.paper, finding.measure,
                finding.claim.expected(report.top5), number(scaled(c.estimate)), number(scaled(sign[0])),
                number(scaled(sign[1])), number(scaled(band[0])), number(scaled(band[1])),
                number(finding.reading.alpha if finding.reading else None), "ratio" if steps else "points", c.test,
                c.n_variant, c.n_baseline, c.n_pairs, number(won), compared, finding.verdict, finding.reason,
                "" if finding.seeds_needed is None else finding.seeds_needed, report.threshold, report.margin,
                report.ratio_margin, str(finding.negligible).lower(), finding.censored, looks,
                *sizes[finding.row_index][:1], *sizes[report.baseline.index][:1], *sizes[finding.row_index][1:],
                *sizes[report.baseline.index][1:],
            ])  # fmt: skip


def short_label(report: Report, row: Row) -> str:
    """For the plots: what the row changes against the baseline (a named ablation sweep varies many columns),
    and, for the baseline, what it is (as the table labels it)."""
    if row is report.baseline:
        return f"{row.label} (baseline)" if len(row.label) <= 40 else "baseline"
    changed = [k for k in report.columns if config_value(row, k) != config_value(report.baseline, k)]
    return ", ".join(f"{k}={shown(config_value(row, k))}" for k in changed)


VERDICT_COLOURS = {"agrees": "C2", "agrees, smaller": "C8", "contradicts": "C3", "no effect": "C7",
                   "rules out the claimed size": "C4", "undecided": "C1", CONFOUNDED: "C5", NOT_APPLICABLE: "C5",
                   NOT_TESTABLE: "C5"}  # fmt: skip


def plot_verdicts(report: Report, path) -> None:
    """One panel per kind of measure (errors and gaps in points, steps as a ratio on a log axis): each claim's
    measured effect with the interval it was read from, coloured by its verdict, the paper's value as a diamond, the
    no-effect margin shaded; a claim not read as its point, hollow."""
    kinds = [kind for kind in (ERROR, GAP, STEPS) if any(f.claim.measure == kind for f in report.findings)]
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
        scaled = (lambda v: None if v is None else math.exp(v)) if ratio else (lambda v: v)
        for y, f in enumerate(findings):
            point, (low, high) = scaled(f.comparison.estimate), f.interval
            low, high = scaled(low), scaled(high)
            colour = VERDICT_COLOURS[f.verdict]
            if point is not None:
                xerr = None if low is None else [[point - low], [high - point]]
                hollow = {"mfc": "white"} if f.verdict in NOT_READ else {}
                axes.errorbar(point, y, xerr=xerr, fmt="o", color=colour, capsize=4, **hollow)
                axes.annotate(shorten(f.shown_verdict, 48), (point, y), xytext=(0, 7), textcoords="offset points",
                              ha="center", fontsize="small", color=colour)  # fmt: skip
            expected = f.claim.ratio if ratio else f.claim.top1
            if expected is not None:
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
            axes.set_xlabel(f"steps to {report.threshold:g}% training error, variant / baseline ({report.level})")
        else:
            axes.axvspan(-report.margin, report.margin, color="grey", alpha=0.15)
            axes.axvline(0, color="grey", lw=0.8)
            what = "gap (val - train_eval top-1)" if kind == GAP else "held-out top-1 error (centre view)"
            axes.set_xlabel(f"Δ {what}, points, variant minus baseline ({report.level})")
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
        c = Comparison("", 0, 0, 0, 0.0, None, None, None) if row is report.baseline else None
        c = c or row.differences.get(report.plot_metric)
        if c is not None and c.estimate is not None:
            xerr = None if c.low is None else [[c.estimate - c.low], [c.high - c.estimate]]
            axes.errorbar(c.estimate, y, xerr=xerr, fmt="o", color="C0", capsize=4)
        claim = next((claim for claim in row.claims if claim.measure == ERROR and not claim.within_run), None)
        value = None if claim is None else (claim.top1 if "top1" in report.plot_metric else claim.top5)
        if value is not None:
            axes.plot(value, y, "D", color="C3", label=None if claim_drawn else "paper's claim")
            claim_drawn = True
    axes.axvline(0, color="grey", lw=0.8)
    axes.set_yticks(range(len(report.rows)))
    axes.set_yticklabels([short_label(report, row) for row in report.rows])
    axes.invert_yaxis()
    axes.set_xlabel(f"Δ {name} error, percentage points (variant minus baseline, 95% CI: paired t or Welch)")
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
    parser.add_argument("--threshold", type=float, nargs="+", metavar="PERCENT",
                        help="training error the steps count to, or several (a verdict at each; default: the sweep's "
                             "hydra.sweeper.threshold, else the paper's 25%%, or the lowest every run compared on "
                             "speed reaches after its first logged point)")  # fmt: skip
    parser.add_argument("--margin", type=float, metavar="POINTS",
                        help=f"no effect: the interval inside ±POINTS (default {DEFAULT_MARGIN}, or the seed rounds "
                             "sweep's hydra.sweeper.margin)")  # fmt: skip
    parser.add_argument("--ratio-margin", type=float, metavar="R",
                        help=f"no effect for a ratio: inside 1/R..R (default {DEFAULT_RATIO_MARGIN}, or the sweep's "
                             "hydra.sweeper.ratio_margin)")  # fmt: skip
    parser.add_argument(
        "--alpha",
        type=float,
        metavar="RATE",
        help="the chance of any wrong verdict over the study's claims and looks (default 0.05)",
    )
    args = parser.parse_args(argv)
    report = build_report(args.sweep_dir, baseline=args.baseline, metric=args.metric, source=args.source,
                          threshold=args.threshold, margin=args.margin, ratio_margin=args.ratio_margin,
                          alpha=args.alpha)  # fmt: skip
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
