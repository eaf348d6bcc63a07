"""The report's data model: runs, rows (configurations), findings (a claim decided on a row) and the report, with the
measures a run is read on and the names of what a claim is instead of a verdict where it cannot be read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from alexlab import metrics, record
from alexlab.report.claims import GAP, STEPS, Claim
from alexlab.stats import ALPHA, Comparison, Looks, Reading

HELD_OUT = "held_out"  # an error claim's measure: the centre-view test error, else val (module docstring)

CENTRE, TEN_CROP = metrics.CENTRE_TOP1, metrics.TEN_CROP_TOP1

# metric key in the run record -> (section it is read from, its name in the report)
METRICS = {
    metrics.VAL_TOP1: ("best", "val top-1"),
    metrics.VAL_TOP5: ("best", "val top-5"),
    metrics.TEST_TOP1: ("final", "test top-1"),
    metrics.TEST_TOP5: ("final", "test top-5"),
    CENTRE: ("final", "test top-1, centre view"),
    TEN_CROP: ("final", "test top-1, ten crops"),
}

TOP5 = (metrics.VAL_TOP5, metrics.TEST_TOP5)  # shown only for a data set of more than 10 classes

GAP_MEASURES = {GAP: ("top1_err", 100.0), "loss_gap": ("loss", 1.0)}  # quantity, scale (the errors in points)

LOSS_GAP = "loss_gap"

MEASURES = (*METRICS, GAP, LOSS_GAP, STEPS)

MEASURE_NAMES = {GAP: "gap (val - train_eval top-1)", LOSS_GAP: "loss gap (val - train_eval)",
                 STEPS: "steps to the threshold", HELD_OUT: "held-out top-1 (centre view)"}  # fmt: skip

PAPER_THRESHOLD = 25.0  # percent training error: the paper's Figure 1 (ReLU against tanh)

DEFAULT_MARGIN = 0.25  # points: below the paper's smallest claimed effect (overlapping pooling, 0.4 points)

DEFAULT_RATIO_MARGIN = 1.1  # a ratio of steps within 1/1.1 .. 1.1 is no effect

# What a claim that is not read is, instead of a verdict (alexlab.report.claims)
CONFOUNDED, NOT_APPLICABLE, NOT_TESTABLE = "confounded", "not applicable", "not testable here"
NOT_NAMED = "not this sweep's claim"  # a sweep that names its claims (hydra.sweeper.claims) leaves the others unread

NOT_READ = (CONFOUNDED, NOT_APPLICABLE, NOT_TESTABLE, NOT_NAMED)

WITHOUT_METRICS = (record.NO_RECORD, record.UNREADABLE)  # statuses of runs without a record to read numbers from

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
    seeds_won: tuple[float, int] = (0.0, 0)  # (won, compared): the variant's held-out error (steps) lower
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
    def band_level(self) -> str:
        return level_name(1 - 2 * self.reading.alpha) if self.reading is not None else ""

    @property
    def measured(self) -> str:
        """variant minus baseline (or the ratio) with the interval it was read from, as the tables show it."""
        c = self.comparison
        if c.estimate is None:
            return "no runs to compare"
        point = f"x{math.exp(c.estimate):.2f}" if self.measure == STEPS else f"{c.estimate:+.2f}"
        return f"{point} {self.interval_text(*self.interval)}".rstrip()

    @property
    def band(self) -> str:
        """The band (1 - 2 alpha) as the tables show it: its ends are the one-sided bounds that rule out the claimed
        size or say no effect, so a verdict read from it can be checked against the paper's number."""
        return self.interval_text(*self.reading.band) if self.reading is not None else ""

    def interval_text(self, low: float | None, high: float | None) -> str:
        """An interval on the comparison's scale, shown as the change is: a ratio for the steps, where runs counted
        at their curve's end leave one end only (`bounded`)."""
        if low is None or high is None:
            return ""
        if self.measure != STEPS:
            return f"[{low:+.2f}, {high:+.2f}]"
        if self.bounded in (1, -1):  # runs counted at their curve's end: one end holds
            return f"[at least x{math.exp(low):.2f}]" if self.bounded == 1 else f"[at most x{math.exp(high):.2f}]"
        return f"[{math.exp(low):.2f}, {math.exp(high):.2f}]"


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
    switch: str = ""  # the one switch it changes against the baseline (the baseline: test_views, read within its runs)
    change: str = ""  # that change, e.g. "lrn on->off"
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
    named: tuple[str, ...] | None = None  # the claims the sweep is for (hydra.sweeper.claims); None: every claim
    unmatched: tuple[str, ...] = ()  # of those, the names no configuration of the sweep tests

    @property
    def level(self) -> str:
        """The verdicts' intervals' level: one for all of them (their shares are equal), else "per claim"."""
        return self._one_level(lambda f: f.level, 1 - self.alpha)

    @property
    def band_level(self) -> str:
        """The bands' level (1 - 2 alpha), as `level`."""
        return self._one_level(lambda f: f.band_level, 1 - 2 * self.alpha)

    def _one_level(self, level_of, confidence: float) -> str:
        """The findings' levels as level_of names them: the one they share, "per claim", or with no finding read
        the study's `confidence`."""
        levels = {level_of(f) for f in self.findings if f.reading is not None}
        return levels.pop() if len(levels) == 1 else "per claim" if levels else level_name(confidence)

    @property
    def unfinished(self) -> list[Run]:
        return [run for run in self.runs if run.status != FINISHED]

    @property
    def findings(self) -> list[Finding]:
        return [finding for row in self.rows for finding in row.findings]

    def undecided(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.decided]


def level_name(confidence: float) -> str:
    """An interval's level as the tables name it: "95%", "99.4%", never rounded up to "100%"."""
    digits = next(d for d in range(3, 12) if float(f"{100 * confidence:.{d}g}") < 100)
    return f"{100 * confidence:.{digits}g}%"


def shown(value) -> str:
    """A value for people: long numbers (Optuna's samples) to 4 significant digits."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if len(str(value)) <= 8 else f"{number:.4g}"
