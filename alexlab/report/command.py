"""`alexlab report SWEEP_DIR [options]`: the report written into the sweep directory and printed."""

from __future__ import annotations

from pathlib import Path

from alexlab.errors import ArgumentParser
from alexlab.files import RECORD
from alexlab.report.build import build_report
from alexlab.report.model import DEFAULT_MARGIN, DEFAULT_RATIO_MARGIN, METRICS, Report
from alexlab.report.plots import plot_curves, plot_differences, plot_verdicts
from alexlab.report.study import write_study
from alexlab.report.tables import markdown_table, report_markdown, verdict_table, write_csv, write_verdicts_csv


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


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="alexlab report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a Hydra multirun directory")
    parser.add_argument("--baseline", metavar="KEY=VALUE[,KEY=VALUE]", help="the row to compare against")
    parser.add_argument("--metric", choices=list(METRICS), help="the metric of report_diff.png (default: test top-1)")
    parser.add_argument(
        "--source",
        choices=["runs", "wandb"],
        default="runs",
        help=f"read the numbers from each run's {RECORD} (default) or from its offline W&B run file",
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
