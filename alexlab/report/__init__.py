"""`alexlab report SWEEP_DIR`: what did each component buy? A verdict on each of the paper's claims, and a table.

Runs are the job directories of the sweep (children, or grandchildren, of SWEEP_DIR holding a run record or a
.hydra/). Two runs are the same configuration when their switches and their other overrides (minus `seed=` and
`trial.*`) are equal; a row is a configuration. Per run the report reads, in percent or points:

- the errors: val top-1/top-5 at the best epoch (the record's `best`); the test errors after training (`final`):
  in the view test_views names (test/*), and in both views, the centre crop and the ten crops (test_centre/*,
  test_ten_crop/*, alexlab.metrics), which every run records;
- the held-out error on which the error claims are decided: the centre-view test top-1 error where every run of a
  comparison has one, else the validation top-1 error at the best epoch (also a centre view);
- the gap: final val top-1 error minus final train_eval top-1 error (training images evaluated as the validation
  images are, without dropout and augmentation), the generalisation gap at the end of training, and the loss gap
  measured the same way;
- the steps: optimiser steps until the training curve (the record's `curve`, the training error of every few
  batches; its clean error where the run measured one) first reaches the threshold, interpolated linearly between
  the curve's points, each point at the step whose weights it measured on average (`bin_centres`). A run is
  *censored* at the threshold, with no steps, when its curve never reaches it or is already there at its first point
  (the curve cannot say when it got there); a speed claim with a censored run stays `undecided`;
- its network's parameters and MACs (alexlab.info.network_size, from the config the run saved) and, for a network
  with LRN, the LRN's strength (alexlab.metrics.lrn_strength).

The paper's claims (alexlab.report.claims) are decided on the quantity the paper measured, where a comparison can test
them: a claim applies to a row that differs from the baseline in exactly that one switch (the ten-crop claim to the
baseline's own runs, its two test views); it is `confounded` where the two networks differ in parameters or MACs
that the switch is not meant to change, `not applicable` or `not testable here` where the claim cannot show (PCA
colour noise on grey images; LRN whose strength is below alexlab.report.claims.LRN_FLOOR; a speed claim from runs not
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

from alexlab.report.build import build_report, check_options, config_value, shown
from alexlab.report.claims import PAPER_CLAIMS, Claim
from alexlab.report.command import main, write_report
from alexlab.report.design import Design, sweep_design
from alexlab.report.model import NOT_READ, Finding, Report, Row, Run
from alexlab.report.plots import LEGEND_INSIDE, distinguish_lines, place_legend, plot_verdicts
from alexlab.report.runs import bin_centres, find_job_dirs, read_run, read_runs, read_wandb_run, steps_to
from alexlab.report.tables import cell_seeds_needed, finding_measure, test_name, verdict_table

__all__ = [
    "LEGEND_INSIDE", "NOT_READ", "PAPER_CLAIMS", "Claim", "Design", "Finding", "Report", "Row", "Run", "bin_centres",
    "build_report", "cell_seeds_needed", "check_options", "config_value", "distinguish_lines", "find_job_dirs",
    "finding_measure", "main", "place_legend", "plot_verdicts", "read_run", "read_runs", "read_wandb_run", "shown",
    "steps_to", "sweep_design", "test_name", "verdict_table", "write_report",
]  # fmt: skip
