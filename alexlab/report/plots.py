"""The report's plots: the verdicts against the paper's numbers, the differences of the plotted metric, the
validation curves."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from textwrap import shorten

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from alexlab.report.build import config_value, shown
from alexlab.report.claims import ERROR, GAP, STEPS
from alexlab.report.model import CONFOUNDED, METRICS, NOT_APPLICABLE, NOT_NAMED, NOT_READ, NOT_TESTABLE, Report, Row
from alexlab.stats import Comparison


def short_label(report: Report, row: Row) -> str:
    """For the plots: what the row changes against the baseline (a named ablation sweep varies many columns),
    and, for the baseline, what it is (as the table labels it)."""
    if row is report.baseline:
        return f"{row.label} (baseline)" if len(row.label) <= 40 else "baseline"
    changed = [k for k in report.columns if config_value(row, k) != config_value(report.baseline, k)]
    return ", ".join(f"{k}={shown(config_value(row, k))}" for k in changed)


VERDICT_COLOURS = {"agrees": "C2", "agrees, smaller": "C8", "contradicts": "C3", "no effect": "C7",
                   "rules out the claimed size": "C4", "undecided": "C1", CONFOUNDED: "C5", NOT_APPLICABLE: "C5",
                   NOT_TESTABLE: "C5", NOT_NAMED: "C9"}  # fmt: skip


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
