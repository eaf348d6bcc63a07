"""`build_report`: a sweep directory's runs read, grouped into configurations, compared with the baseline, and the
paper's claims decided."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from omegaconf import ListConfig

from alexlab import metrics, record
from alexlab.errors import BadValue, NotFound
from alexlab.report.claims import STEPS, check_claim_names, is_named
from alexlab.report.design import sweep_design
from alexlab.report.model import (
    DEFAULT_MARGIN,
    DEFAULT_RATIO_MARGIN,
    FINISHED,
    MEASURES,
    METRICS,
    PAPER_THRESHOLD,
    Report,
    Row,
    Run,
    Summary,
    shown,
)
from alexlab.report.runs import dig, read_runs, settings_of, steps_to
from alexlab.report.study import read_study
from alexlab.report.verdicts import classes_of, decide_study, findings, network_size_of, paired_values, paper_claims
from alexlab.stats import ALPHA, compare


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
    """source "runs": each job's run record; "wandb": each job's offline W&B run file (the same numbers).
    threshold: percent training error for the steps, or several (a finding each; None: see the package docstring).
    margin, ratio_margin: of no effect (None: as the seed rounds sweep that wrote the directory decided, else
    DEFAULT_*). alpha: the study's error rate (5%), shared out over its claims and looks (alexlab.stats)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise NotFound(f"sweep directory not found: {sweep_dir}")
    if metric is not None and metric not in METRICS:
        raise BadValue(f"unknown metric {metric}; choose one of: {', '.join(METRICS)}")
    check_options(threshold, margin, ratio_margin, alpha)
    design = sweep_design(sweep_dir / record.MULTIRUN)
    where = f"{sweep_dir}/{record.MULTIRUN}: hydra.sweeper."
    check_options(design.threshold, design.margin, design.ratio_margin, None, where)
    names = check_claim_names(design.claims, where)
    chosen = "chosen with --threshold" if threshold is not None else "the sweep's, hydra.sweeper.threshold"
    threshold = design.threshold if threshold is None else threshold
    margin = next(m for m in (margin, design.margin, DEFAULT_MARGIN) if m is not None)
    ratio_margin = next(m for m in (ratio_margin, design.ratio_margin, DEFAULT_RATIO_MARGIN) if m is not None)
    alpha = ALPHA if alpha is None else float(alpha)
    runs = read_runs(sweep_dir, source)
    rows, columns = configurations(sweep_dir, runs)
    if baseline is None and design.baseline:
        base, _ = choose_baseline(rows, columns, sweep_dir, design.baseline)
        reason = f"the sweep's hydra.sweeper.baseline ({design.baseline})"
    else:
        base, reason = choose_baseline(rows, columns, sweep_dir, baseline)
    for row in rows:
        row.switch, row.change, row.claims = paper_claims(row, base)
    speed_rows = [base, *(row for row in rows if any(claim.measure == STEPS for claim in row.claims))]
    wanted = as_thresholds(threshold)
    main_threshold, threshold_reason = choose_threshold(speed_rows if len(speed_rows) > 1 else rows,
                                                        wanted[0] if wanted else None, chosen)  # fmt: skip
    thresholds = (main_threshold, *wanted[1:])
    count_steps(runs, thresholds)
    for row in rows:
        row.summaries = {m: summarize([run.values[m] for run in row.runs if m in run.values], m) for m in MEASURES}
    for row in rows:
        if row is not base:
            row.differences = {m: compare(*paired_values(row, base, m), log_scale=m == STEPS) for m in MEASURES}
        row.findings = [f for claim in row.claims for f in findings(row, base, claim, thresholds, names)]
    decide_study([f for row in rows for f in row.findings], design.looks, alpha, margin, ratio_margin)
    if metric is None:
        metric = metrics.TEST_TOP1 if any(metrics.TEST_TOP1 in run.values for run in runs) else metrics.VAL_TOP1
    study = read_study(sweep_dir) if (sweep_dir / "optuna_study.yaml").exists() else None
    top5 = any(classes_of(run) is None or classes_of(run) > 10 for run in runs if run.status == FINISHED)
    unmatched = tuple(name for name in names or () if not any(is_named(row.switch, claim, (name,))
                                                                for row in rows for claim in row.claims))  # fmt: skip
    return Report(sweep_dir, rows, base, reason, columns, runs, metric, main_threshold, threshold_reason, margin,
                  ratio_margin, study, design.looks, alpha, top5, thresholds, names, unmatched)  # fmt: skip


def configurations(sweep_dir: Path, runs: list[Run]) -> tuple[list[Row], list[str]]:
    """The sweep's runs grouped into configurations (rows, labelled by what varies, with their networks' sizes) and
    the columns that vary; BadValue where no run can be identified."""
    if not runs:
        raise BadValue(f"{sweep_dir} holds no runs (no sub-directory with a {record.RECORD} or .hydra/)")
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
    return rows, columns


def count_steps(runs: list[Run], thresholds: tuple[float, ...]) -> None:
    """Each run's steps to each threshold, or how its curve is censored there (never, or already at its first point);
    its STEPS value is the first threshold's."""
    for run in runs:
        for t in thresholds:
            steps = steps_to(run.train_curve, t)
            if steps is not None:
                run.steps[t] = steps
            elif run.train_curve:
                run.censored_at[t] = "first" if run.train_curve[0][1] <= t else "never"
        if thresholds[0] in run.steps:
            run.values[STEPS] = run.steps[thresholds[0]]
        run.censored = thresholds[0] in run.censored_at


def as_thresholds(threshold) -> list[float]:
    """--threshold / hydra.sweeper.threshold as a list of training errors in percent: a number, several, or none."""
    if threshold is None:
        return []
    if isinstance(threshold, ListConfig):  # hydra.sweeper.threshold: [25, 10] as the sweeper gets it
        threshold = list(threshold)
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
    base = base_config(sweep_dir / record.MULTIRUN, columns)
    if base:
        for row in rows:
            if all(same_value(config_value(row, k), v) for k, v in base.items()):
                where = ", ".join(f"{k}={v}" for k, v in base.items())
                return row, f"its varying values are the sweep's base choices in multirun.yaml ({where})"
    return rows[0], "the first row by job number (no row is marked or has the sweep's base choices)"


def base_config(multirun_yaml: Path, keys: list[str]) -> dict[str, str]:
    """The sweep's base value of each key: the group choice (hydra.runtime.choices), else the composed value."""
    composed = record.read_mapping(multirun_yaml)
    choices = dig(composed, "hydra", "runtime", "choices")
    choices = choices if isinstance(choices, dict) else {}
    values = {}
    for key in keys:
        value = choices.get(key, dig(composed, *key.split(".")))
        if value is None or isinstance(value, (dict, list)):
            return {}  # the sweep varies something the base config does not say: no row is "the base"
        values[key] = str(value)
    return values


def same_value(a: str | None, b: str) -> bool:
    try:
        return a == b or float(a) == float(b)  # 0.01 and 1e-2
    except (TypeError, ValueError):
        return False
