"""`alexlab report SWEEP_DIR`: what did each component buy? One row per configuration of a Hydra multirun.

Runs are the job directories of the sweep (children, or grandchildren, of SWEEP_DIR holding a metrics.json or a
.hydra/). Two runs are the same configuration when their switches and their other overrides (minus `seed=` and
`trial.*`) are equal. Per configuration: the seeds run, mean and sample standard deviation (ddof=1) of the val
top-1/top-5 error at the best epoch (`best` in metrics.json) and of the test top-1/top-5 error (`final`), in percent.

Method: each metric's difference against the baseline row is variant mean minus baseline mean, in percentage points,
with a 95% Welch (unequal-variance) t interval: se = sqrt(s_v^2/n_v + s_b^2/n_b), dof by Welch-Satterthwaite
se^4 / ((s_v^2/n_v)^2/(n_v-1) + (s_b^2/n_b)^2/(n_b-1)), interval diff +- t.ppf(0.975, dof) * se; "n/a" when either
side has fewer than 2 finished runs (and zero width when both sides have zero spread). Runs that did not finish
(failed, pruned, running, no or unreadable metrics.json) are listed below the table, never averaged in.

The baseline row is `--baseline KEY=VALUE[,...]` if given, else the row whose `ablation` switch is `baseline`, else
the row whose varying values equal the sweep's base config in multirun.yaml (`hydra.runtime.choices` for switches,
the composed value for other keys), else the first row by job number.
A row that differs from the baseline in exactly one switch gets the paper's claim for that change beside it.

Writes report.md, report.csv, report_diff.png and report_curves.png into SWEEP_DIR, and for an Optuna sweep
(SWEEP_DIR/optuna_study.yaml) trials.md and param_importances.png.
"""

from __future__ import annotations

import argparse
import csv
import json
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
from matplotlib.ticker import MaxNLocator
from scipy import stats

matplotlib.use("Agg")  # reports are written on headless machines; Optuna's plot goes through pyplot

# metric key in metrics.json -> (section it is read from, its name in the report)
METRICS = {
    "val/top1_err": ("best", "val top-1"),
    "val/top5_err": ("best", "val top-5"),
    "test/top1_err": ("final", "test top-1"),
    "test/top5_err": ("final", "test top-5"),
}


@dataclass(frozen=True)
class Claim:
    top1: float | None = None  # percentage points, variant minus baseline
    top5: float | None = None
    text: str = ""  # a qualifier ("about", "over") for numbers, or the whole claim when it has none
    test_only: bool = False

    def reversed(self) -> Claim:
        flip = {"over": "under"}.get(self.text, self.text)
        negate = lambda x: None if x is None else -x
        return Claim(negate(self.top1), negate(self.top5), flip, self.test_only)

    def __str__(self) -> str:
        if self.top1 is None:
            return self.text
        numbers = f"{self.top1:+.1f} / " + ("-" if self.top5 is None else f"{self.top5:+.1f}")
        return " ".join(part for part in (self.text, numbers, "(test only)" if self.test_only else "") if part)


# The paper's ablation claims, from /work/shared/PAPER.md "The paper's ablation claims" (Krizhevsky et al. 2012:
# ReLU 3.1, two GPUs 3.2, LRN 3.3, overlapping pooling 3.4, augmentation 4.1, dropout 4.2, depth 7), as
# (switch, baseline option, variant option) -> variant minus baseline in points of top-1 / top-5 error.
# The reverse change gets the negated numbers.
PAPER_CLAIMS = {
    ("lrn", "on", "off"): Claim(+1.4, +1.2),
    ("pooling", "overlap", "plain"): Claim(+0.4, +0.3),
    ("split", "grouped", "half"): Claim(+1.7, +1.2),
    ("depth", "5", "4"): Claim(+2.0, None, "about"),
    ("augment", "paper", "flip_crop"): Claim(+1.0, None, "over"),  # PCA colour noise removed
    ("test_views", "ten_crop", "centre"): Claim(+1.5, +1.3, test_only=True),  # validation always uses the centre
    ("activation", "relu", "tanh"): Claim(text="ReLU reaches 25% train error 6x faster"),
    ("dropout", "on", "off"): Claim(text="substantial overfitting without dropout"),
    ("augment", "flip_crop", "none"): Claim(text="substantial overfitting without crops + flips"),
}
WITHOUT_METRICS = ("no metrics.json", "unreadable")  # statuses of runs identified from their .hydra/ files
NOT_COMPONENTS = {"ablation"}  # a label for the run, not a part of the network: never counted as the change


@dataclass
class Run:
    job: str  # the job directory, relative to the sweep dir
    status: str  # finished, failed, pruned, running, interrupted, no metrics.json, unreadable
    error: str | None = None
    seed: int | None = None
    switches: dict[str, str | None] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # the overrides that are not switches, seed or trial.*
    values: dict[str, float] = field(default_factory=dict)  # METRICS key -> percent
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val top-1 %)


@dataclass
class Summary:
    values: list[float]
    mean: float | None
    std: float | None  # sample (ddof=1); None when fewer than 2 values


@dataclass
class Difference:
    value: float  # percentage points, variant minus baseline
    low: float | None = None  # 95% Welch interval; None when either side has fewer than 2 runs
    high: float | None = None
    dof: float | None = None


@dataclass
class Row:
    index: int
    label: str
    switches: dict[str, str | None]
    settings: dict[str, str]
    runs: list[Run]  # finished
    unfinished: list[Run]
    summaries: dict[str, Summary] = field(default_factory=dict)
    differences: dict[str, Difference | None] = field(default_factory=dict)
    change: str = ""  # the one switch change against the baseline, e.g. "lrn on->off"
    claim: Claim | None = None


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
    study: StudySummary | None = None  # for an Optuna sweep

    @property
    def unfinished(self) -> list[Run]:
        return [run for run in self.runs if run.status != "finished"]


def build_report(
    sweep_dir: str | Path, baseline: str | None = None, metric: str | None = None, source: str = "runs"
) -> Report:
    """source "runs": each job's metrics.json; "wandb": each job's offline W&B run file (the same numbers)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    read = read_wandb_run if source == "wandb" else read_run
    runs = [read(job_dir, sweep_dir) for job_dir in find_job_dirs(sweep_dir)]
    if not runs:
        raise ValueError(f"{sweep_dir} holds no runs (no sub-directory with a metrics.json or .hydra/)")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"unknown metric {metric}; choose one of: {', '.join(METRICS)}")
    known = set().union(*(run.switches for run in runs if run.status not in WITHOUT_METRICS))
    for run in runs:
        if known and run.switches and run.status in WITHOUT_METRICS:  # Hydra's choices name more groups: keep ours
            run.switches = {k: run.switches.get(k) for k in known}
        run.settings = settings_of(run.overrides, run.switches)
    rows = group_rows([run for run in runs if run.switches or run.settings])
    keys = sorted({k for row in rows for k in (*row.switches, *row.settings)})
    columns = [k for k in keys if len({config_value(row, k) for row in rows}) > 1]
    for row in rows:
        row.label = ", ".join(f"{k}={shown(config_value(row, k))}" for k in columns) or "all runs"
        row.summaries = {m: summarize([run.values[m] for run in row.runs if m in run.values]) for m in METRICS}
    base, reason = choose_baseline(rows, columns, sweep_dir, baseline)
    for row in rows:
        if row is not base:
            row.differences = {m: difference(row.summaries[m], base.summaries[m]) for m in METRICS}
            row.change, row.claim = paper_claim(row, base)
    if metric is None:
        metric = "test/top1_err" if any("test/top1_err" in run.values for run in runs) else "val/top1_err"
    study = read_study(sweep_dir) if (sweep_dir / "optuna_study.yaml").exists() else None
    return Report(sweep_dir, rows, base, reason, columns, runs, metric, study)


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


def read_run(job_dir: Path, sweep_dir: Path) -> Run:
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status="no metrics.json")
    try:
        metrics = json.loads((job_dir / "metrics.json").read_text())
    except FileNotFoundError:
        metrics = None
        run.error = "still running, or killed before it wrote one"
    except (OSError, ValueError) as exc:
        metrics = None
        run.status, run.error = "unreadable", f"metrics.json: {type(exc).__name__}: {exc}"
    if metrics is None:  # identify the run from what Hydra wrote when it started
        hydra_dir = job_dir / ".hydra"
        choices = read_yaml(hydra_dir / "hydra.yaml").get("hydra", {}).get("runtime", {}).get("choices", {})
        run.switches = {k: none_or_str(v) for k, v in choices.items() if not k.startswith("hydra/")}
        run.overrides = read_yaml(hydra_dir / "overrides.yaml") or []
        seeds = [o.partition("=")[2] for o in run.overrides if o.startswith("seed=")]
        run.seed = int(seeds[-1]) if seeds and seeds[-1].isdigit() else read_yaml(hydra_dir / "config.yaml").get("seed")
        return run
    run.status, run.error = metrics.get("status", "unknown"), metrics.get("error")
    run.switches = {k: none_or_str(v) for k, v in (metrics.get("switches") or {}).items()}
    run.overrides = list(metrics.get("overrides") or [])
    run.seed = metrics.get("seed")
    for key, (section, _) in METRICS.items():
        value = (metrics.get(section) or {}).get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            run.values[key] = 100.0 * value
    for entry in metrics.get("history") or []:
        if isinstance(entry.get("val/top1_err"), (int, float)):
            run.curve.append((int(entry["epoch"]), 100.0 * entry["val/top1_err"]))
    return run


def read_wandb_run(job_dir: Path, sweep_dir: Path) -> Run:
    """A job's numbers from its W&B run file (alexlab.wandb_runs), chosen as metrics.json chooses them: val errors at
    the epoch of the lowest val top-1 error, test errors as logged. The latest W&B run of the job counts (a re-run
    job dir holds the interrupted run too)."""
    from alexlab.wandb_runs import find_runs

    found = find_runs(job_dir)
    if not found:
        run = read_run(job_dir, sweep_dir)  # identifies the job; its numbers are not taken from metrics.json
        run.values, run.curve = {}, []
        run.status, run.error = "no W&B run", "no run-*.wandb file in the job directory (logger without wandb?)"
        return run
    wandb_run = found[-1]
    config, summary = wandb_run.config, wandb_run.summary
    run = Run(job=str(job_dir.relative_to(sweep_dir)), status=summary.get("status") or wandb_run.state)
    run.error = summary.get("error")
    reserved = {"seed", "overrides", "git_commit", "git_dirty", "config", "_wandb"}
    run.switches = {k: none_or_str(v) for k, v in config.items() if k not in reserved}
    run.overrides = list(config.get("overrides") or [])
    run.seed = config.get("seed")
    validations = [row for row in wandb_run.history if isinstance(row.get("val/top1_err"), (int, float))]
    best = min(validations, key=lambda row: row["val/top1_err"]) if validations else {}
    for key, (section, _) in METRICS.items():
        value = (best if section == "best" else summary).get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            run.values[key] = 100.0 * value
    run.curve = [(int(row["epoch"]), 100.0 * row["val/top1_err"]) for row in validations]
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


def summarize(values: list[float]) -> Summary:
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Summary(values, mean, std)


def difference(variant: Summary, base: Summary) -> Difference | None:
    """variant minus baseline with a 95% Welch t interval (see the module docstring)."""
    if variant.mean is None or base.mean is None:
        return None
    diff = Difference(variant.mean - base.mean)
    if variant.std is None or base.std is None:
        return diff
    var_v, var_b = variant.std**2 / len(variant.values), base.std**2 / len(base.values)
    se = math.sqrt(var_v + var_b)
    if se == 0:  # identical values on both sides: no spread, the interval is the point
        diff.low = diff.high = diff.value
        return diff
    diff.dof = (var_v + var_b) ** 2 / (var_v**2 / (len(variant.values) - 1) + var_b**2 / (len(base.values) - 1))
    half = stats.t.ppf(0.975, diff.dof) * se
    diff.low, diff.high = diff.value - half, diff.value + half
    return diff


def choose_baseline(rows: list[Row], columns: list[str], sweep_dir: Path, wanted: str | None) -> tuple[Row, str]:
    if wanted:
        pairs = [part.partition("=")[::2] for part in wanted.split(",")]
        matches = [row for row in rows if all(same_value(config_value(row, k), v.strip("'\"")) for k, v in pairs)]
        if len(matches) != 1:
            labels = "; ".join(row.label for row in (matches or rows))
            found = "matches no row" if not matches else f"matches {len(matches)} rows"
            raise ValueError(f"--baseline {wanted} {found}: {labels}")
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


def paper_claim(row: Row, base: Row) -> tuple[str, Claim | None]:
    keys = (set(row.switches) | set(base.switches)) - NOT_COMPONENTS
    changed = [k for k in sorted(keys) if row.switches.get(k) != base.switches.get(k)]
    if len(changed) != 1 or row.settings != base.settings:
        return "", None
    (key,) = changed
    before, after = base.switches.get(key), row.switches.get(key)
    change = f"{key} {before}->{after}"
    if (key, before, after) in PAPER_CLAIMS:
        return change, PAPER_CLAIMS[key, before, after]
    if (key, after, before) in PAPER_CLAIMS:
        return change, PAPER_CLAIMS[key, after, before].reversed()
    return change, None


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
    written = [out / "report_diff.png", out / "report_curves.png"]
    plot_differences(report, written[0])
    plot_curves(report, written[1])
    if report.study is not None:
        written += write_study(report.study, out)
    (out / "report.md").write_text(report_markdown(report, [p.name for p in written if p.suffix == ".png"]))
    write_csv(report, out / "report.csv")
    return [out / "report.md", out / "report.csv", *written]


def cell_summary(summary: Summary) -> str:
    if summary.mean is None:
        return ""
    return f"{summary.mean:.2f}" + ("" if summary.std is None else f" ± {summary.std:.2f}")


def cell_difference(row: Row, base: Row, metric: str) -> str:
    if row is base:
        return "baseline"
    diff = row.differences.get(metric)
    if diff is None:
        return ""
    interval = "n/a" if diff.low is None else f"{diff.low:+.2f}, {diff.high:+.2f}"
    return f"{diff.value:+.2f} [{interval}]"


def markdown_table(report: Report) -> str:
    header = ["#", *report.columns, "n", "seeds"]
    for name in (label for _, label in METRICS.values()):
        header += [f"{name} %", f"Δ {name} [95% CI]"]
    header.append("paper's Δ top-1 / top-5")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        seeds = ", ".join(str(run.seed) for run in row.runs)
        n = f"{len(row.runs)}" + (f" (+{len(row.unfinished)} unfinished)" if row.unfinished else "")
        cells = [f"{row.index}" + (" (baseline)" if row is report.baseline else "")]
        cells += [shown(config_value(row, k)) for k in report.columns] + [n, seeds]
        for metric in METRICS:
            cells += [cell_summary(row.summaries[metric]), cell_difference(row, report.baseline, metric)]
        cells.append(f"{row.change}: {row.claim}" if row.claim else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(report: Report, pngs: list[str]) -> str:
    counts = Counter(run.status for run in report.runs)
    by_status = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    lines = [
        f"# alexlab report: {report.sweep_dir}",
        "",
        f"{len(report.runs)} runs ({by_status}) in {len(report.rows)} configurations. "
        f"Baseline: row {report.baseline.index} ({report.baseline.label}), because {report.baseline_reason}. "
        "Errors in percent, mean ± sample std (ddof=1) over seeds; val at the best epoch, test after training. "
        "Δ = variant minus baseline in percentage points with a 95% Welch t interval (Welch-Satterthwaite dof), "
        "n/a when either side has fewer than 2 finished runs. The paper's claims are in the same sign "
        "convention; validation always uses the centre view, so test_views changes only the test error.",
        "",
        markdown_table(report),
        "",
    ]
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


def study_lines(study: StudySummary) -> list[str]:
    lines = [f"Study `{study.name}`: {len(study.trials)} trials, storage {study.storage}; see trials.md."]
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
            axes.figure.savefig(out / "param_importances.png", dpi=120, bbox_inches="tight")
            plt.close(axes.figure)
            written.append(out / "param_importances.png")
        except Exception as exc:  # e.g. an importance evaluator that cannot fit these trials
            study.importance_skipped = f"{type(exc).__name__}: {exc}"
    lines = [f"# Trials of `{study.name}`", "", *study_lines(study), ""]
    lines += ["| number | state | value | params | error | duration s |", "|---|---|---|---|---|---|"]
    for trial in study.trials:
        duration = "" if trial.duration is None else f"{trial.duration.total_seconds():.1f}"
        value = "" if trial.value is None else f"{trial.value:.6g}"
        error = str(trial.user_attrs.get("error") or "").replace("|", "\\|").replace("\n", " ")
        params = shown_params(trial)
        lines.append(f"| {trial.number} | {trial.state.name} | {value} | {params} | {error} | {duration} |")
    (out / "trials.md").write_text("\n".join(lines) + "\n")
    return written


def write_csv(report: Report, path: Path) -> None:
    header = ["row", "label", "is_baseline", *report.columns, "n", "seeds", "n_unfinished"]
    for metric in METRICS:
        name = metric.removesuffix("_err").replace("/", "_")
        header += [f"{name}_{part}" for part in ("mean", "std", "diff", "ci_low", "ci_high", "dof")]
    header += ["change", "paper_top1", "paper_top5", "paper_claim"]
    number = lambda x: "" if x is None else repr(float(x))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in report.rows:
            cells = [row.index, row.label, int(row is report.baseline)]
            cells += [config_value(row, k) for k in report.columns]
            cells += [len(row.runs), ";".join(str(run.seed) for run in row.runs), len(row.unfinished)]
            for metric in METRICS:
                summary, diff = row.summaries[metric], row.differences.get(metric) or Difference(None)
                cells += [number(x) for x in (summary.mean, summary.std, diff.value, diff.low, diff.high, diff.dof)]
            claim = row.claim or Claim()
            cells += [row.change, number(claim.top1), number(claim.top5), str(claim) if row.claim else ""]
            writer.writerow(cells)


def short_label(report: Report, row: Row) -> str:
    """For the plots: what the row changes against the baseline (a named ablation sweep varies many columns)."""
    if row is report.baseline:
        return "baseline"
    changed = [k for k in report.columns if config_value(row, k) != config_value(report.baseline, k)]
    return ", ".join(f"{k}={shown(config_value(row, k))}" for k in changed)


def plot_differences(report: Report, path: Path) -> None:
    name = METRICS[report.plot_metric][1]
    figure = Figure(figsize=(8, 1.2 + 0.45 * len(report.rows)))
    axes = figure.subplots()
    claim_drawn = False
    for y, row in enumerate(report.rows):
        diff = Difference(0.0) if row is report.baseline else row.differences.get(report.plot_metric)
        if diff is not None:
            xerr = None if diff.low is None else [[diff.value - diff.low], [diff.high - diff.value]]
            axes.errorbar(diff.value, y, xerr=xerr, fmt="o", color="C0", capsize=4)
        claim = row.claim
        value = None if claim is None else (claim.top1 if "top1" in report.plot_metric else claim.top5)
        if value is not None and not (claim.test_only and report.plot_metric.startswith("val/")):
            axes.plot(value, y, "D", color="C3", label=None if claim_drawn else "paper's claim")
            claim_drawn = True
    axes.axvline(0, color="grey", lw=0.8)
    axes.set_yticks(range(len(report.rows)))
    axes.set_yticklabels([short_label(report, row) for row in report.rows])
    axes.invert_yaxis()
    axes.set_xlabel(f"Δ {name} error, percentage points (variant minus baseline, 95% Welch CI)")
    title = f"{report.sweep_dir.name}: baseline = row {report.baseline.index}, {report.baseline.label}"
    axes.set_title(shorten(title, 110), fontsize="medium")
    if claim_drawn:
        axes.legend(loc="best")
    figure.savefig(path, dpi=120, bbox_inches="tight")


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
        (line,) = axes.plot(epochs, means, marker=".", label=f"{short_label(report, row)} (n={len(row.runs)})")
        if len(row.runs) >= 2:
            spread = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) >= 2 else 0.0 for e in epochs]
            lower = [m - s for m, s in zip(means, spread, strict=True)]
            upper = [m + s for m, s in zip(means, spread, strict=True)]
            axes.fill_between(epochs, lower, upper, color=line.get_color(), alpha=0.2)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("val top-1 error, % (mean over seeds, ±1 std)")
    if axes.lines:
        axes.legend(fontsize="small")
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
    args = parser.parse_args(argv)
    report = build_report(args.sweep_dir, baseline=args.baseline, metric=args.metric, source=args.source)
    written = write_report(report)
    print(f"Baseline: row {report.baseline.index} ({report.baseline.label}), because {report.baseline_reason}.")
    print(markdown_table(report))
    if report.unfinished:
        print(f"\n{len(report.unfinished)} run(s) not finished, not averaged in:")
        for run in report.unfinished:
            print(f"  {run.job}: {run.status}" + (f": {run.error}" if run.error else ""))
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
