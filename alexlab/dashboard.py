"""`alexlab dashboard SWEEP_DIR`: the sweep's W&B view, as a report on W&B or as one self-contained HTML page.

The views, the same in both modes:
- a header: the sweep, its runs by state, and how to upload the offline runs (`wandb sync`);
- the verdicts on the paper's claims (as `alexlab report` decides them: each claim on its own measure, with its
  interval), when a configuration differs from the baseline in a switch the paper makes a claim about;
- per switch (or other override) that varies across the sweep, `val/top1_err` per epoch with one line per value of
  that switch: the mean over the finished runs with that value;
- the final test top-1 error per configuration (mean ± std over seeds), configurations as `alexlab report` groups
  them (runs with the same overrides apart from `seed`);
- for an Optuna sweep (SWEEP_DIR/optuna_study.yaml), the trials' parameters and objective in parallel coordinates.

Data: each job's offline W&B run file (alexlab.wandb_runs; the latest one when a resumed job holds several), else its
run record (a run logged without W&B, e.g. logger=csv); each view says which it used. As in the report, only
finished runs are averaged in. Offline (the default unless you are logged in to W&B; `--offline`), the page is
SWEEP_DIR/dashboard/index.html: plots are inline PNGs, nothing is loaded from the network; each panel is an element
with class "panel" and data-panel="<name>" that an inline script marks data-rendered="true" once its image has
loaded. Online (`--online`, or logged in), the views become a W&B report (needs `pip install wandb-workspaces`) over
the project's finished runs whose group is the sweep directory's name.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import re
import statistics
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alexlab import metrics, wandb_runs
from alexlab.errors import ArgumentParser, BadValue
from alexlab.record import RECORD
from alexlab.report import (
    Report,
    Row,
    build_report,
    cell_seeds_needed,
    config_value,
    distinguish_lines,
    finding_measure,
    place_legend,
    plot_verdicts,
    shown,
    test_name,
    verdict_table,
)
from alexlab.wandb_runs import job_run, wandb_logged_in

matplotlib.use("Agg")  # Optuna's parallel-coordinates plot goes through pyplot

PROJECT = "alexlab"  # conf/logger/wandb.yaml
CURVE_METRIC = metrics.VAL_TOP1
BAR_METRIC = metrics.TEST_TOP1
MAX_LINES_PER_PANEL = 10  # a column with more values (an Optuna search's samples) is left to the parallel coordinates
WANDB_SOURCE, METRICS_SOURCE = "wandb", RECORD
SOURCE_NAMES = {WANDB_SOURCE: "their W&B run files", METRICS_SOURCE: f"their {RECORD} (no W&B run file)"}


@dataclass
class DashboardRun:
    job: str  # the job directory, relative to the sweep dir
    row: Row  # its configuration
    state: str  # finished, failed, pruned, running, interrupted, ...
    source: str  # WANDB_SOURCE or METRICS_SOURCE
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> val top-1 error, %
    test_top1: float | None = None  # %


@dataclass
class Panel:
    name: str  # data-panel
    title: str
    png: bytes
    note: str  # where the data came from, and what is left out
    attributes: dict[str, str] = field(default_factory=dict)  # more data-* attributes
    table: list[tuple[str, ...]] = field(default_factory=list)  # header first; shown under the plot


def collect_runs(report: Report, found: list) -> list[DashboardRun]:
    """One DashboardRun per job of the report, from its W&B run file when it has one, else from its run record.
    `found`: find_runs' list, in its start order."""
    runs = []
    for row in report.rows:
        for run in [*row.runs, *row.unfinished]:
            job_dir = report.sweep_dir / run.job
            in_job = [w for w in found if Path(w.path).is_relative_to(job_dir)]
            if not in_job:  # alexlab.report read its run record, in percent
                test = run.values.get(BAR_METRIC)
                runs.append(DashboardRun(run.job, row, run.status, METRICS_SOURCE, dict(run.curve), test))
                continue
            # a job resumed after an interruption has a W&B run per stint (in_job keeps find_runs' start order)
            wandb_run = job_run(in_job)
            status = wandb_run.summary.get("status")  # train.py's own word (pruned, interrupted) beside W&B's state
            state = status if isinstance(status, str) else wandb_run.state
            dashboard_run = DashboardRun(run.job, row, state, WANDB_SOURCE)
            for entry in wandb_run.history:
                if "epoch" in entry and finite(entry.get(CURVE_METRIC)):
                    dashboard_run.curve[int(entry["epoch"])] = 100.0 * entry[CURVE_METRIC]
            test = wandb_run.summary.get(BAR_METRIC)  # logged once, after training
            dashboard_run.test_top1 = 100.0 * test if finite(test) else None
            runs.append(dashboard_run)
    job_order = {run.job: i for i, run in enumerate(report.runs)}
    return sorted(runs, key=lambda r: job_order[r.job])


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def grouped_columns(report: Report) -> tuple[list[str], list[str]]:
    """The varying columns that get a curve panel, and those left out for having too many values."""
    values = {column: {config_value(row, column) for row in report.rows} for column in report.columns}
    kept = [column for column in report.columns if len(values[column]) <= MAX_LINES_PER_PANEL]
    return kept, [column for column in report.columns if column not in kept]


def curves_by_value(runs: list[DashboardRun], column: str) -> dict[str, tuple[list[int], list[float], int]]:
    """Value of `column` -> (epochs, mean val top-1 error at each epoch over the finished runs, number of runs)."""
    by_value: dict[str, list[DashboardRun]] = {}
    for run in runs:
        if run.state == "finished" and run.curve:
            by_value.setdefault(shown(config_value(run.row, column)), []).append(run)
    curves = {}
    for value, group in by_value.items():
        epochs = sorted({epoch for run in group for epoch in run.curve})
        means = [statistics.fmean(run.curve[e] for run in group if e in run.curve) for e in epochs]
        curves[value] = (epochs, means, len(group))
    return curves


def source_note(runs: list[DashboardRun]) -> tuple[str, str]:
    """The data-source attribute (WANDB_SOURCE, METRICS_SOURCE or both) and a sentence naming the runs of each."""
    by_source: dict[str, list[str]] = {}
    for run in runs:
        by_source.setdefault(run.source, []).append(run.job)
    parts = [f"{len(jobs)} run(s) from {SOURCE_NAMES[s]} (jobs {', '.join(jobs)})" for s, jobs in by_source.items()]
    return "+".join(sorted(by_source)) or "none", "; ".join(parts) or "no finished run yet"


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def curve_panel(runs: list[DashboardRun], column: str) -> Panel:
    curves = curves_by_value(runs, column)
    figure = Figure(figsize=(6, 3.6))
    axes = figure.subplots()
    for value, (epochs, means, n) in sorted(curves.items()):
        axes.plot(epochs, means, label=f"{column}={value} (n={n})")
    distinguish_lines(axes)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    several = any(n >= 2 for _, _, n in curves.values())
    axes.set_ylabel("val top-1 error, % " + ("(mean over runs)" if several else "(one run each)"))
    if curves:
        place_legend(axes)
    else:
        axes.text(0.5, 0.5, "no finished run with a validation curve yet", ha="center", transform=axes.transAxes)
    used = [run for run in runs if run.state == "finished" and run.curve]
    source, note = source_note(used)
    attributes = {"source": source, "lines": str(len(curves))}
    return Panel(f"curves-{column}", f"{CURVE_METRIC} per epoch by {column}", figure_png(figure), note, attributes)


def final_error_panel(report: Report, runs: list[DashboardRun]) -> Panel:
    labels, means, stds, table = [], [], [], [("configuration", "runs", f"{BAR_METRIC} %")]
    for row in report.rows:
        values = [r.test_top1 for r in runs if r.row is row and r.state == "finished" and r.test_top1 is not None]
        # the chart and the table name a configuration alike
        labels.append(row.label + (" (baseline)" if row is report.baseline else ""))
        means.append(statistics.fmean(values) if values else math.nan)
        stds.append(statistics.stdev(values) if len(values) >= 2 else 0.0)
        cell = f"{means[-1]:.2f}" + (f" ± {stds[-1]:.2f}" if len(values) > 1 else "") if values else "no finished run"
        table.append((labels[-1], str(len(values)), cell))
    figure = Figure(figsize=(7, 1.2 + 0.4 * len(labels)))
    axes = figure.subplots()
    drawn = [i for i, mean in enumerate(means) if not math.isnan(mean)]
    spread = any(std > 0 for std in stds)  # error bars only where a configuration has several runs
    bars = axes.barh(drawn, [means[i] for i in drawn], xerr=[stds[i] for i in drawn] if spread else None,
                     color="C0", capsize=3)  # fmt: skip
    axes.bar_label(bars, fmt="%.2f", label_type="center", color="white")
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("test top-1 error, % " + ("(mean ± std over seeds)" if spread else "(one run each)"))
    used = [run for run in runs if run.state == "finished" and run.test_top1 is not None]
    source, note = source_note(used)
    attributes = {"source": source, "bars": str(len(drawn)), "configurations": str(len(report.rows))}
    title = f"final {BAR_METRIC} per configuration"
    return Panel("test-error", title, figure_png(figure), note, attributes, table)


def verdicts_panel(report: Report) -> Panel:
    """The report's verdict figure and table (alexlab.report.plot_verdicts, verdict_table's columns)."""
    buffer = io.BytesIO()
    plot_verdicts(report, buffer)
    measured = f"measured Δ [{report.level}]"
    table = [("change", "the paper", "measured on", measured, "test", "verdict", "seeds to decide")]
    for f in report.findings:
        table.append((f.change, f.claim.paper, finding_measure(f), f.measured, test_name(f.comparison),
                      f.shown_verdict, cell_seeds_needed(f)))  # fmt: skip
    verdicts = Counter(f.verdict for f in report.findings)
    note = (
        f"Against the baseline row {report.baseline.index} ({report.baseline.label}); from each run's {RECORD}, "
        f"as `alexlab report {report.sweep_dir}` decides them; steps counted to {report.threshold:g}% training error."
    )
    attributes = {"source": METRICS_SOURCE, "claims": str(len(report.findings))}
    attributes |= {re.sub(r"\W+", "-", verdict): str(n) for verdict, n in verdicts.items()}
    return Panel("verdicts", "the paper's claims: verdicts", buffer.getvalue(), note, attributes, table)


def make_room_for_the_colour_bar(figure) -> None:
    """Optuna's parallel coordinates put the last parameter's tick labels right of its axis, where the colour bar
    sits: the figure is widened and the bar moved right by as much, so that it covers none of them."""
    width, height = figure.get_size_inches()
    figure.set_size_inches(width * 1.2, height)
    for axes in figure.axes:
        box = axes.get_position()
        shift = 0.16 if axes.get_label() == "<colorbar>" else 0.0
        axes.set_position([box.x0 / 1.2 + shift, box.y0, box.width / 1.2, box.height])


def parallel_coordinates_panel(report: Report) -> Panel:
    study = report.study
    figure, note = None, f"Optuna study {study.name} in {study.storage}: {len(study.trials)} trial(s)"
    if study.study is not None and study.best is not None:
        import matplotlib.pyplot as plt
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = optuna.visualization.matplotlib.plot_parallel_coordinate(study.study, target_name=study.objective)
        figure = axes.figure
        plt.close(figure)
        make_room_for_the_colour_bar(figure)
    if figure is None:
        figure = Figure(figsize=(6, 2))
        why = study.error or "no completed trial yet"
        figure.subplots().text(0.5, 0.5, why, ha="center", va="center", wrap=True)
        note += f"; {why}"
    title = "Optuna trials: parameters and objective"
    return Panel("optuna-parallel-coordinates", title, figure_png(figure), note, {"source": "optuna"})


def build_panels(report: Report, runs: list[DashboardRun]) -> list[Panel]:
    panels = [verdicts_panel(report)] if report.findings else []
    panels += [curve_panel(runs, column) for column in grouped_columns(report)[0]]
    panels.append(final_error_panel(report, runs))
    if report.study is not None:
        panels.append(parallel_coordinates_panel(report))
    return panels


def sync_command(report: Report) -> str:
    depth = max(len(Path(run.job).parts) for run in report.runs)
    return f"wandb sync {report.sweep_dir}/{'*/' * depth}wandb/offline-run-*"


def states_line(runs: list[DashboardRun]) -> str:
    counts = Counter(run.state for run in runs)
    return f"{len(runs)} runs: " + ", ".join(f"{n} {state}" for state, n in counts.most_common())


RENDER_CHECK = """
for (const panel of document.querySelectorAll(".panel")) {
  const image = panel.querySelector("img");
  // rendered: the image decoded; top: where the panel sits (panels side by side share it: the tests' layout check)
  const check = () => {
    panel.dataset.rendered = String(image.naturalWidth > 0);
    panel.dataset.top = String(panel.offsetTop);
  };
  if (image.complete) check(); else { image.addEventListener("load", check); image.addEventListener("error", check); }
}
"""
STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; align-items: start; }
.panel { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em; min-width: 0; }
.panel[data-panel="verdicts"] { grid-column: 1 / -1; } .panel table { display: block; overflow-x: auto; }
.panel h2 { font-size: 1em; margin: 0 0 0.5em; } .panel img { max-width: 100%; }
.note { font-size: 0.8em; color: #555; } table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; } code { background: #f3f3f3; }
"""


def page_html(report: Report, runs: list[DashboardRun], panels: list[Panel]) -> str:
    e = html.escape
    name = report.sweep_dir.name
    sections = []
    for panel in panels:
        attributes = "".join(f' data-{k}="{e(v)}"' for k, v in panel.attributes.items())
        image = f"data:image/png;base64,{base64.b64encode(panel.png).decode()}"
        table = ""
        if panel.table:
            header, *body = panel.table
            table = "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in header) + "</tr>"
            table += "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>" for cells in body)
            table += "</table>"
        sections.append(
            f'<section class="panel" data-panel="{e(panel.name)}"{attributes}><h2>{e(panel.title)}</h2>'
            f'<img alt="{e(panel.title)}" src="{image}"><p class="note">{e(panel.note)}</p>{table}</section>'
        )
    not_grouped = grouped_columns(report)[1]
    left_out = f" Too many values to group curves by: {e(', '.join(not_grouped))}." if not_grouped else ""
    not_finished = [run for run in runs if run.state != "finished"]
    unfinished = "".join(f"<li>job {e(r.job)}: {e(r.state)} ({e(r.row.label)})</li>" for r in not_finished)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alexlab dashboard: {e(name)}</title><style>{STYLE}</style></head>
<body>
<header>
<h1>alexlab dashboard: {e(name)}</h1>
<p>Sweep <code>{e(str(report.sweep_dir))}</code>: {e(states_line(runs))}, in {len(report.rows)} configurations.
Only finished runs are averaged in.{left_out}
W&amp;B project <code>{PROJECT}</code>, group <code>{e(name)}</code>.</p>
{f"<ul>{unfinished}</ul>" if unfinished else ""}
<p>Upload the offline runs: <code>{e(sync_command(report))}</code>, then
<code>alexlab dashboard {e(str(report.sweep_dir))} --online</code> for this view as a W&amp;B report.</p>
</header>
<main>
{chr(10).join(sections)}
</main>
<script>{RENDER_CHECK}</script>
</body></html>
"""


def write_offline_page(report: Report, runs: list[DashboardRun]) -> Path:
    out = report.sweep_dir / "dashboard" / "index.html"
    out.parent.mkdir(exist_ok=True)
    out.write_text(page_html(report, runs, build_panels(report, runs)))
    return out


def wandb_config_key(report: Report, column: str) -> str:
    """Where a column lives in a run's W&B config: group choices are top-level keys, other overrides (optimizer.lr)
    are paths in the composed config under wandb_runs.CONFIG (loggers.start_wandb)."""
    return column if any(column in row.switches for row in report.rows) else f"{wandb_runs.CONFIG}.{column}"


def build_wandb_report(report: Report, runs: list[DashboardRun], found: list, entity: str | None = None):
    """The W&B report of the same views; `.save()` it to publish (needs a login)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    name = report.sweep_dir.name
    if "'" in name:  # wandb-workspaces parses filters as Python source and cannot quote one
        raise BadValue(f"the W&B group {name!r} has a quote, which a W&B report filter cannot name")
    owner = {"entity": entity} if entity else {}

    def runset(**kwargs):  # the sweep's finished runs, as the offline page averages
        finished = [expr.Metric("Group") == name, expr.Metric("State") == "finished"]
        return wr.Runset(project=PROJECT, **owner, filters=finished, **kwargs)

    kept, _ = grouped_columns(report)
    curves = [
        wr.LinePlot(
            title=f"{CURVE_METRIC} by {column}",
            x="epoch",
            y=[CURVE_METRIC],
            groupby=wr.Config(wandb_config_key(report, column)),
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
            aggregate=True,
        )
        for column in kept
    ]
    bars = wr.BarPlot(title=f"final {BAR_METRIC} per configuration", metrics=[BAR_METRIC], aggregate=True)
    verdicts = f"## The paper's claims: verdicts\n\n{verdict_table(report)}"
    verdict_blocks = [wr.MarkdownBlock(text=verdicts)] if report.findings else []
    blocks = [
        wr.MarkdownBlock(
            text=f"Sweep `{report.sweep_dir}`: {states_line(runs)}, in {len(report.rows)} configurations.\n\n"
            f"Offline runs are uploaded with `{sync_command(report)}`."
        ),
        *verdict_blocks,
        wr.PanelGrid(runsets=[runset()], panels=curves),
        wr.PanelGrid(
            runsets=[runset(groupby=[f"config.{wandb_config_key(report, column)}" for column in report.columns])],
            panels=[bars],
        ),
    ]
    if report.study is not None and report.study.trials:
        objective = report.study.objective
        # train.py asks W&B to keep the minimum of val/* as the summary ({"min": x}); other metrics keep the last
        kept_as_min = any(isinstance(w.summary.get(objective), dict) for w in found)
        params = sorted({param for trial in report.study.trials for param in trial.params})
        columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(wandb_config_key(report, p))) for p in params]
        target = wr.SummaryMetric(f"{objective}.min" if kept_as_min else objective)
        columns.append(wr.ParallelCoordinatesPlotColumn(metric=target))
        panel = wr.ParallelCoordinatesPlot(title="Optuna trials: parameters and objective", columns=columns)
        blocks.append(wr.PanelGrid(runsets=[runset()], panels=[panel]))
    return wr.Report(project=PROJECT, **owner, title=f"alexlab sweep {name}"[:128], blocks=blocks)


def wants_online(online: bool, offline: bool) -> bool:
    if online or offline:
        return online
    return os.environ.get("WANDB_MODE") not in ("offline", "dryrun", "disabled") and wandb_logged_in()


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="alexlab dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a Hydra multirun directory")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--online", action="store_true", help="save a W&B report (default when logged in)")
    mode.add_argument("--offline", action="store_true", help="write SWEEP_DIR/dashboard/index.html (default)")
    parser.add_argument("--entity", help="the W&B entity of the report (default: your default entity)")
    args = parser.parse_args(argv)

    report = build_report(args.sweep_dir)
    found = wandb_runs.find_runs(report.sweep_dir)
    runs = collect_runs(report, found)
    if not wants_online(args.online, args.offline):
        print(write_offline_page(report, runs))
        return 0
    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        print("alexlab: error: the W&B report needs wandb-workspaces: pip install wandb-workspaces", file=sys.stderr)
        return 2
    if not wandb_logged_in():
        raise BadValue("--online needs a W&B login (`wandb login` or WANDB_API_KEY); --offline writes the page")
    saved = build_wandb_report(report, runs, found, args.entity).save()
    print(saved.url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
