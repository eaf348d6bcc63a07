"""The report's words and numbers: report.md (verdicts, method, configurations), report.csv and verdicts.csv."""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter
from pathlib import Path

from alexlab import metrics
from alexlab.report.build import config_value, shown
from alexlab.report.claims import ERROR, LRN_FLOOR, STEPS
from alexlab.report.model import (
    CENTRE,
    MEASURE_NAMES,
    MEASURES,
    METRICS,
    NOT_READ,
    TOP5,
    Finding,
    Report,
    Row,
    Summary,
)
from alexlab.report.study import study_lines
from alexlab.stats import MAX_SEEDS_NEEDED, Comparison


def measure_name(measure: str) -> str:
    if measure in METRICS:
        return METRICS[measure][1] + " error"
    return MEASURE_NAMES[measure]


def finding_measure(f: Finding) -> str:
    """What a finding was decided on, for people."""
    if f.claim.within_run:
        same = " (same runs)" if f.change.endswith("(within each run)") else ""
        return f"test top-1, centre view against ten crops{same}"
    if f.measure == metrics.VAL_TOP1 and f.claim.measure == ERROR:
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
    """Of the seeds both sides ran, on how many the variant's held-out error (a speed claim: its steps) was lower."""
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


def cell_band(report: Report, f: Finding) -> str:
    """The band a verdict on size or no effect was read from (its level where the claims' levels differ)."""
    if f.verdict in NOT_READ or not f.band:
        return ""
    return f.band + (f" ({f.band_level})" if report.band_level == "per claim" else "")


def verdict_table(report: Report) -> str:
    header = ["change", "the paper", "measured on", "paper's Δ", f"measured Δ [{report.level}]"]
    header += [f"band [{report.band_level}]", "test", "seeds won", "verdict", "seeds to decide"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in report.findings:
        cells = [f.change, f.claim.paper, finding_measure(f), f.claim.expected(report.top5), cell_measured(report, f)]
        cells.append(cell_band(report, f))
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
    if report.named is not None:  # only where the sweep named its claims: the reports of other sweeps are unchanged
        unmatched = f"; no configuration tests {', '.join(report.unmatched)}" if report.unmatched else ""
        look_text += (f" The sweep is for the claims it names (hydra.sweeper.claims: {', '.join(report.named)}"
                      f"{unmatched}); its other claims are shown as not this sweep's claim, neither read nor counted "
                      "among its claims.")  # fmt: skip
    return (
        f"The chance of any wrong verdict in this study is held at {100 * report.alpha:g}% over all its "
        f"{len(read)} claims that can be read (Holm's step-down: each claim at "
        f"{100 * report.alpha:g}% over the claims not yet fully resolved; shares here: {share_text}). "
        f"{look_text} A claim is read from two intervals at its share alpha: the sign interval at 1 - alpha "
        "(measured Δ; agrees / contradicts where it excludes 0 on the claim's side / the other side) and the band "
        f"at 1 - 2 alpha (band; no effect where it lies inside ±{report.margin:g} points or a ratio within "
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
        "error was lower (for a speed claim: on how many it took fewer steps)."
    )


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
