"""`alexlab report`: hand-built sweep directories with known numbers and known answers (tests/helpers/sweeps.py), an
Optuna study, and one real smoke sweep."""

import csv
import json
import math
import shutil

import matplotlib.image
import optuna
import pytest
import yaml
from helpers.commands import read_metrics
from helpers.sweeps import (
    ABLATIONS,
    BASE,
    PNG_MAGIC,
    ablation_sweep,
    curve_reaching,
    seed_rounds_yaml,
    write_multirun_yaml,
    write_run,
    write_study,
)
from scipy import stats

from alexlab.report import NOT_READ, bin_centres, build_report, main, steps_to
from alexlab.report.claims import LRN_FLOOR
from alexlab.stats import Looks


def paired(variant, base):
    """Variant minus baseline and its 95% paired t interval over matched seeds, written out by hand (percent)."""
    d = [100 * (v - b) for v, b in zip(variant, base, strict=False)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    half = stats.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half, len(d) - 1


def welch(variant, base):
    """Variant minus baseline and its 95% Welch t interval, written out by hand (values in percent)."""
    v, b = [100 * x for x in variant], [100 * x for x in base]
    mean_v, mean_b = sum(v) / len(v), sum(b) / len(b)
    var_v = sum((x - mean_v) ** 2 for x in v) / (len(v) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    se2 = var_v / len(v) + var_b / len(b)
    dof = se2**2 / ((var_v / len(v)) ** 2 / (len(v) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, dof) * math.sqrt(se2)
    return mean_v - mean_b, mean_v - mean_b - half, mean_v - mean_b + half, dof


BASE_VAL1, OFF_VAL1 = [0.30, 0.32, 0.35], [0.40, 0.37]
BASE_TEST5, OFF_TEST5 = [0.10, 0.11, 0.15], [0.20, 0.21]


@pytest.fixture
def grid(tmp_path):
    """dropout on (3 seeds) and off (2 seeds), lrn off (1 seed); the base choices are dropout=on lrn=on."""
    sweep = tmp_path / "sweep"
    for seed in range(3):
        write_run(sweep, seed, seed, val=(BASE_VAL1[seed], 0.1), test=(0.5, BASE_TEST5[seed]))
    for seed in range(2):
        write_run(sweep, 3 + seed, seed, val=(OFF_VAL1[seed], 0.1), test=(0.5, OFF_TEST5[seed]), dropout="off")
    write_run(sweep, 5, 0, val=(0.33, 0.1), lrn="off")
    write_multirun_yaml(sweep)
    return sweep


def test_rows_means_stds_and_paired_intervals_match_a_hand_computation(grid, capsys):
    report = build_report(grid)
    assert [(row.label, len(row.runs)) for row in report.rows] == [
        ("dropout=on, lrn=on", 3),
        ("dropout=off, lrn=on", 2),
        ("dropout=on, lrn=off", 1),
    ]
    assert report.columns == ["dropout", "lrn"]
    base, off, lrn_off = report.rows
    assert [run.seed for run in base.runs] == [0, 1, 2]
    val1 = base.summaries["val/top1_err"]
    assert val1.mean == pytest.approx(100 * sum(BASE_VAL1) / 3, abs=1e-9)
    spread = math.sqrt(sum((100 * x - val1.mean) ** 2 for x in BASE_VAL1) / 2)
    assert val1.std == pytest.approx(spread, abs=1e-9)
    assert base.summaries["val/top5_err"].mean == pytest.approx(10.0, abs=1e-9)  # from `best`, not `final` (99%)

    # dropout=off ran seeds 0 and 1, the baseline 0, 1 and 2: paired over seeds 0 and 1
    for metric, variant, baseline in (("val/top1_err", OFF_VAL1, BASE_VAL1), ("test/top5_err", OFF_TEST5, BASE_TEST5)):
        diff = off.differences[metric]
        expected = paired(variant, baseline)
        assert diff.test == "paired t" and diff.n_pairs == 2
        assert (diff.estimate, diff.low, diff.high, diff.dof) == pytest.approx(expected, abs=1e-9)

    one_seed = lrn_off.differences["val/top1_err"]  # seed 0 only: a difference, no interval
    assert lrn_off.summaries["val/top1_err"].std is None
    assert one_seed.estimate == pytest.approx(33.0 - 100 * BASE_VAL1[0], abs=1e-9) and one_seed.low is None

    assert main([str(grid)]) == 0
    printed = capsys.readouterr().out
    expected_val1 = paired(OFF_VAL1, BASE_VAL1)
    assert f"{expected_val1[0]:+.2f} [{expected_val1[1]:+.2f}, {expected_val1[2]:+.2f}]" in printed
    assert "[n/a]" in printed
    with (grid / "report.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["label"] for r in table] == [row.label for row in report.rows]
    assert [r["is_baseline"] for r in table] == ["1", "0", "0"]
    assert float(table[1]["val_top1_ci_low"]) == pytest.approx(expected_val1[1], abs=1e-9)
    assert float(table[1]["val_top1_ci_high"]) == pytest.approx(expected_val1[2], abs=1e-9)
    assert float(table[0]["val_top1_mean"]) == pytest.approx(val1.mean, abs=1e-9)
    assert table[1]["val_top1_test"] == "paired t" and float(table[1]["val_top1_dof"]) == 1
    assert table[2]["val_top1_std"] == "" and table[2]["val_top1_ci_low"] == ""
    assert table[0]["seeds"] == "0;1;2" and table[2]["n"] == "1"


def test_rows_without_shared_seeds_get_welchs_interval(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        write_run(sweep, seed, seed, val=(BASE_VAL1[seed], 0.1))
    for i, seed in enumerate((10, 11)):
        write_run(sweep, 3 + i, seed, val=(OFF_VAL1[i], 0.1), dropout="off")
    write_multirun_yaml(sweep)
    diff = build_report(sweep).rows[1].differences["val/top1_err"]
    assert diff.test == "Welch t" and diff.n_pairs == 0
    assert (diff.estimate, diff.low, diff.high, diff.dof) == pytest.approx(welch(OFF_VAL1, BASE_VAL1), abs=1e-9)


def test_outputs_exist_and_parse(grid):
    main([str(grid)])
    for name in ("report_diff.png", "report_curves.png"):
        assert (grid / name).read_bytes()[:8] == PNG_MAGIC
        image = matplotlib.image.imread(grid / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    markdown = (grid / "report.md").read_text()
    assert "6 runs (6 finished) in 3 configurations" in markdown
    assert "paired t" in markdown and "Baseline: row 0 (dropout=on, lrn=on)" in markdown
    assert "multirun.yaml" in markdown  # why it is the baseline
    assert "![report_diff.png](report_diff.png)" in markdown and "![report_curves.png](report_curves.png)" in markdown
    assert "![report_verdicts.png](report_verdicts.png)" in markdown
    configurations = markdown.split("## Configurations")[1]
    table_lines = [line for line in configurations.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 1 + 3 and all(line.count("|") == table_lines[0].count("|") for line in table_lines)
    verdicts = markdown.split("## Verdicts on the paper's claims")[1].split("## Configurations")[0]
    verdict_lines = [line for line in verdicts.splitlines() if line.startswith("| ")]
    assert len(verdict_lines) == 1 + 4  # dropout off: held-out error, gap and speed; lrn off: the error


def test_baseline_is_the_row_marked_ablation_baseline(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, 0, lrn="off", ablation="lrn_off")
    write_run(sweep, 1, ablation="baseline")
    report = build_report(sweep)
    assert report.baseline.switches["ablation"] == "baseline" and "ablation" in report.baseline_reason
    lrn_off = report.rows[0]
    assert lrn_off.change == "lrn on->off"  # the ablation label itself does not count as the change
    assert [(claim.top1, claim.top5) for claim in lrn_off.claims] == [(1.4, 1.2)]


def test_baseline_from_the_sweeps_base_choices_and_reverse_claims(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, 0, lrn="on")
    write_run(sweep, 1, lrn="off")
    write_multirun_yaml(sweep, lrn="off")
    report = build_report(sweep)
    assert report.baseline.label == "lrn=off" and "base choices" in report.baseline_reason
    ((claim,),) = [report.rows[0].claims]
    assert (claim.top1, claim.top5, claim.direction) == (-1.4, -1.2, -1)
    assert report.baseline.claims == ()


def test_baseline_from_the_sweeps_base_config_for_plain_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, 0, optimizer__lr="0.1")
    write_run(sweep, 1, optimizer__lr="1e-2")  # the base config's 0.01, written another way
    write_multirun_yaml(sweep)
    report = build_report(sweep)
    assert report.baseline.label == "optimizer.lr=1e-2" and "(optimizer.lr=0.01)" in report.baseline_reason


def test_baseline_from_the_command_line(grid, capsys):
    assert main([str(grid), "--baseline", "dropout=off"]) == 0
    printed = capsys.readouterr().out
    assert "Baseline: row 1 (dropout=off, lrn=on), because chosen with --baseline dropout=off" in printed
    report = build_report(grid, baseline="lrn=off")
    assert report.baseline.label == "dropout=on, lrn=off"
    # the baseline has seed 0 only: the matched seed's difference, no interval
    assert report.rows[0].differences["val/top1_err"].estimate == pytest.approx(100 * BASE_VAL1[0] - 33, abs=1e-9)
    assert [(c.top1, c.top5) for c in report.rows[0].claims] == [(-1.4, -1.2)]
    with pytest.raises(ValueError, match="matches 2 rows"):
        build_report(grid, baseline="dropout=on")
    with pytest.raises(ValueError, match="matches no row"):
        build_report(grid, baseline="lrn=caffe")


def test_without_marks_the_first_row_by_job_number_is_the_baseline(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep, 10, pooling="plain")
    write_run(sweep, 2, pooling="overlap")  # job 2 comes before job 10
    report = build_report(sweep)
    assert report.baseline.label == "pooling=overlap" and "first row" in report.baseline_reason
    assert [(c.top1, c.top5) for c in report.rows[1].claims] == [(0.4, 0.3)]


def test_paper_claims_sit_beside_one_switch_changes_only(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    write_run(sweep, 0)
    write_run(sweep, 1, test_views="ten_crop")
    write_run(sweep, 2, depth="4")
    write_run(sweep, 3, augment="paper")
    write_run(sweep, 4, split="half", lrn="off")  # two changes: no claim
    write_run(sweep, 5, pooling="plain", data__batch_size=64)  # another setting too: no claim
    write_run(sweep, 6, activation="tanh")
    write_run(sweep, 7, init="default")  # a switch the paper makes no claim about
    write_multirun_yaml(sweep)
    report = build_report(sweep)
    claims = {row.label: row.claims for row in report.rows}
    assert len(report.rows) == 8 and report.baseline is report.rows[0]
    (ten_crop,) = report.rows[1].claims  # these runs tested one view each: read between the rows
    assert (ten_crop.top1, ten_crop.within_run, ten_crop.direction) == (None, True, -1)
    assert [(c.top1, c.top5) for c in report.rows[2].claims] == [(2.0, None)]
    assert report.rows[3].claims[0].top1 == -1.0  # adding PCA colour noise: the paper's "over 1 point" better
    assert report.rows[4].claims == report.rows[5].claims == report.rows[7].claims == ()
    (relu,) = report.rows[6].claims
    assert "6x faster" in relu.paper and relu.measure == "steps" and relu.ratio == 6.0
    assert report.rows[7].change == "init paper->default"
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "test_views centre->ten_crop: smaller" in printed
    assert "depth 5->4: about +2.0 |" in printed
    assert "augment flip_crop->paper: under -1.0 |" in printed
    assert sum(len(found) for found in claims.values()) == 4


def test_unfinished_runs_are_listed_not_averaged(grid, capsys):
    write_run(grid, 6, 5, val=(0.99, 0.99), status="failed", error="FloatingPointError: diverged at epoch 1")
    write_run(grid, 7, 6, val=(0.99, 0.99), status="running")
    write_run(grid, 8, 0, status="failed", error="RuntimeError: out of memory", depth="3")  # all its runs failed
    (grid / "9").mkdir()
    (grid / "9" / "metrics.json").write_text('{"status": "fini')  # cut off mid-write
    started = grid / "10" / ".hydra"  # started, metrics.json not written yet: identified from Hydra's files
    started.mkdir(parents=True)
    (started / "overrides.yaml").write_text(yaml.safe_dump(["logger=none", "dropout=off", "seed=7"]))
    choices = BASE | {"dropout": "off", "logger": "none", "hydra/launcher": "basic"}
    (started / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))

    report = build_report(grid)
    base, off = report.rows[0], report.rows[1]
    assert len(base.runs) == 3 and base.summaries["val/top1_err"].mean == pytest.approx(100 * sum(BASE_VAL1) / 3)
    assert [run.job for run in base.unfinished] == ["6", "7"]
    assert [(run.job, run.seed) for run in off.unfinished] == [("10", 7)]
    failed_row = report.rows[-1]
    assert failed_row.switches["depth"] == "3" and failed_row.runs == [] and len(failed_row.unfinished) == 1
    statuses = {run.job: run.status for run in report.unfinished}
    assert statuses == {"6": "failed", "7": "running", "8": "failed", "9": "unreadable", "10": "no metrics.json"}

    assert main([str(grid)]) == 0
    printed = capsys.readouterr().out
    assert "6: failed: FloatingPointError: diverged at epoch 1" in printed and "10: no metrics.json" in printed
    markdown = (grid / "report.md").read_text()
    assert "11 runs (6 finished, 2 failed, 1 running, 1 unreadable, 1 no metrics.json)" in markdown
    assert "| 8 | failed | depth=3, dropout=on, lrn=on | RuntimeError: out of memory |" in markdown
    assert "| 9 | unreadable | unknown |" in markdown
    with (grid / "report.csv").open() as f:
        table = {r["label"]: r for r in csv.DictReader(f)}
    assert table["depth=3, dropout=on, lrn=on"]["n"] == "0"
    assert table["depth=3, dropout=on, lrn=on"]["n_unfinished"] == "1"
    assert table["depth=3, dropout=on, lrn=on"]["val_top1_mean"] == ""


def test_a_record_that_names_no_switches_is_identified_by_hydra_or_listed_not_dropped(grid, capsys):
    """A finished record that does not say which configuration ran (written by hand, or by another tool) takes its
    switches and seed from .hydra/; with no .hydra/ either it is listed as unidentified, never silently dropped."""
    bare = {"status": "finished", "final": {"test/top1_err": 0.5}, "best": {"val/top1_err": 0.45}}  # not alexlab's
    hydra_dir = grid / "6" / ".hydra"
    hydra_dir.mkdir(parents=True)
    (grid / "6" / "metrics.json").write_text(json.dumps(bare))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(["logger=none", "dropout=off", "seed=9"]))
    choices = BASE | {"dropout": "off", "logger": "none", "hydra/launcher": "basic"}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    (grid / "7").mkdir()
    (grid / "7" / "metrics.json").write_text(json.dumps(bare))

    report = build_report(grid)
    off = next(row for row in report.rows if row.switches.get("dropout") == "off" and row.switches["lrn"] == "on")
    assert [(run.job, run.seed) for run in off.runs][-1] == ("6", 9)
    assert sorted(run.values["val/top1_err"] for run in off.runs) == pytest.approx([37.0, 40.0, 45.0])
    assert [(run.job, run.status) for run in report.unfinished] == [("7", "unidentified")]
    assert sum(len(row.runs) for row in report.rows) == 7
    assert main([str(grid)]) == 0
    markdown = (grid / "report.md").read_text()
    assert "8 runs (7 finished, 1 unidentified)" in markdown
    assert "its record names no switches and it has no .hydra/ files" in markdown


def test_optuna_sweep_writes_trials_and_param_importances(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = tmp_path / "sweep"
    study = write_study(sweep, [0.4, 0.25, None, 0.3])
    assert main([str(sweep)]) == 0
    trials = (sweep / "trials.md").read_text()
    assert [line.split(" | ")[1] for line in trials.splitlines() if line.startswith("| ") and "state" not in line] == [
        "COMPLETE",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
    ]
    assert "FloatingPointError: diverged" in trials
    lr = study.best_trial.params["optimizer.lr"]
    assert study.best_trial.number == 1
    assert f"Best trial: number 1, val/top1_err 0.25, optimizer.lr={lr:.4g}." in (sweep / "report.md").read_text()
    assert (sweep / "param_importances.png").read_bytes()[:8] == PNG_MAGIC
    report = build_report(sweep)
    assert len(report.rows) == 4 and report.columns == ["optimizer.lr"]  # each trial its own configuration


def test_optuna_importances_are_skipped_with_a_reason(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = tmp_path / "sweep"
    write_study(sweep, [0.4, None])
    assert main([str(sweep)]) == 0
    assert not (sweep / "param_importances.png").exists()
    assert "param_importances.png skipped: 1 completed trial(s)" in (sweep / "report.md").read_text()


def test_missing_or_empty_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep directory not found"):
        main([str(tmp_path / "nowhere")])
    (tmp_path / "empty" / "logs").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no runs"):
        main([str(tmp_path / "empty")])


def test_a_real_smoke_sweep(seed_grid, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(seed_grid, sweep)
    assert main([str(sweep)]) == 0
    report = build_report(sweep)
    assert [(row.label, len(row.runs)) for row in report.rows] == [("dropout=on", 2), ("dropout=off", 2)]
    assert report.baseline is report.rows[0] and "multirun.yaml" in report.baseline_reason
    assert [sorted(run.seed for run in row.runs) for row in report.rows] == [[0, 1], [0, 1]]
    on_runs = [read_metrics(sweep / run.job) for run in report.rows[0].runs]
    expected = sum(100 * m["final"]["test/top1_err"] for m in on_runs) / 2
    assert report.rows[0].summaries["test/top1_err"].mean == pytest.approx(expected, abs=1e-9)
    assert report.rows[1].differences["test/top1_err"].low is not None
    assert report.plot_metric == "test/top1_err"
    for name in ("report.md", "report.csv", "report_diff.png", "report_curves.png"):
        assert (sweep / name).stat().st_size > 0


# --- the verdicts, on sweeps whose true answers are built in (helpers.sweeps.ABLATIONS) -------------------------


def findings_of(report) -> dict:
    return {(f.change, f.claim.measure): f for f in report.findings}


def test_each_claim_is_read_on_its_measure_size_and_sign(tmp_path):
    report = build_report(ablation_sweep(tmp_path / "sweep"))
    found = findings_of(report)
    assert {key: f.verdict for key, f in found.items()} == {
        ("lrn on->off", "error"): "agrees",  # +1.46 on every seed; the paper's 1.4 inside its interval
        ("pooling overlap->plain", "error"): "no effect",
        ("split grouped->half", "error"): "contradicts",
        ("depth 5->4", "error"): "undecided",
        ("dropout on->off", "error"): "agrees",
        ("dropout on->off", "gap"): "agrees",
        ("dropout on->off", "steps"): "agrees",  # half the steps: the paper's 2x
        ("activation relu->tanh", "steps"): "agrees, smaller",  # 3x: the paper's 6x excluded
        ("test_views ten_crop->centre (within each run)", "error"): "agrees",
    }
    assert report.threshold == 25.0 and "paper" in report.threshold_reason
    lrn = found["lrn on->off", "error"]
    assert lrn.measure == "test_centre/top1_err" and lrn.comparison.test == "paired t"
    assert lrn.comparison.n_pairs == 5 and lrn.comparison.estimate == pytest.approx(1.46, abs=1e-9)
    assert lrn.seeds_won == (0.0, 5)  # never better without LRN
    low, high = lrn.interval
    assert low < 1.4 < high and lrn.reading.alpha == pytest.approx(0.05 / 9)  # Holm: 9 claims read, none resolved
    tanh = found["activation relu->tanh", "steps"]
    assert math.exp(tanh.comparison.estimate) == pytest.approx(3.0, rel=1e-6)
    assert tanh.shown_verdict == "agrees, smaller than claimed" and math.exp(tanh.reading.band[1]) < 6
    assert tanh.seeds_won == (0.0, 5)  # a speed claim's seeds won count its steps: tanh never took fewer
    assert tanh.band == f"[{math.exp(tanh.reading.band[0]):.2f}, {math.exp(tanh.reading.band[1]):.2f}]"
    ten_crop = found["test_views ten_crop->centre (within each run)", "error"]
    assert ten_crop.comparison.estimate == pytest.approx(0.82, abs=1e-9) and ten_crop.row_index == 0
    depth = found["depth 5->4", "error"]
    assert depth.seeds_needed is not None and depth.seeds_needed > 5  # more seeds would decide it
    assert all(f.seeds_needed is None for f in report.findings if f.verdict != "undecided")
    assert len(report.undecided()) == 1


def test_verdicts_reach_the_markdown_csv_and_plot(tmp_path, capsys):
    sweep = ablation_sweep(tmp_path / "sweep")
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "Verdicts on the paper's claims" in printed and "**contradicts**" in printed
    markdown = (sweep / "report.md").read_text()
    assert "9 claims: 5 agrees, 1 agrees, smaller, 1 contradicts, 1 no effect, 1 undecided." in markdown
    assert f"measured Δ [{100 * (1 - 0.05 / 9):.3g}%]" in markdown and "Holm" in markdown
    assert f"| band [{100 * (1 - 2 * 0.05 / 9):.3g}%] |" in markdown  # the interval a verdict on size is read from
    tanh_line = next(line for line in markdown.splitlines() if line.startswith("| activation relu->tanh"))
    band_high = float(tanh_line.split(" | ")[5].strip("[]").split(", ")[1])
    assert band_high < 6 and "**agrees, smaller than claimed**" in tanh_line  # the band's end shows why
    assert "25% training error (the paper's, from Figure 1" in markdown
    with (sweep / "verdicts.csv").open() as f:
        verdicts = list(csv.DictReader(f))
    assert len(verdicts) == 9
    tanh = next(v for v in verdicts if v["change"] == "activation relu->tanh")
    assert tanh["scale"] == "ratio" and float(tanh["estimate"]) == pytest.approx(3.0, rel=1e-6)
    assert tanh["verdict"] == "agrees, smaller" and tanh["test"] == "paired t" and tanh["n_pairs"] == "5"
    assert float(tanh["band_high"]) < 6.0 and float(tanh["alpha"]) == pytest.approx(0.05 / 9)
    depth = next(v for v in verdicts if v["change"] == "depth 5->4")
    assert depth["verdict"] == "undecided" and int(depth["seeds_needed"]) > 5
    assert (depth["parameters"], depth["baseline_parameters"], depth["seeds_compared"]) == ("900", "1000", "5")
    with (sweep / "report.csv").open() as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    dropout = next(r for label, r in rows.items() if "dropout_off" in label)
    assert "gap (val - train_eval top-1): agrees" in dropout["verdicts"]
    assert float(dropout["gap_diff"]) == pytest.approx(4.0, abs=1e-6) and dropout["gap_test"] == "paired t"
    image = matplotlib.image.imread(sweep / "report_verdicts.png")
    assert image.ndim == 3 and image.shape[0] > 300  # three panels: errors, gaps, steps


def test_the_size_decides_a_claim_whose_sign_is_open(tmp_path):
    """Removing conv4 costs between -0.3 and +0.4 points where the paper says about 2: the sign is open, the size is
    not: `rules out the claimed size`, decided."""
    sweep = ablation_sweep(tmp_path / "sweep", depth_4=({"depth": "4"}, [0.1, -0.2, 0.15, 0.0, 0.05], 0.0, 1.0,
                                                       (900, 4000)))  # fmt: skip
    depth = findings_of(build_report(sweep))["depth 5->4", "error"]
    assert depth.interval[0] < 0 < depth.interval[1] < 2.0
    assert depth.verdict == "rules out the claimed size" and depth.decided and depth.seeds_needed is None


def test_an_effect_real_in_sign_but_inside_the_margin_is_negligible(tmp_path):
    """Removing conv4 raises the error on every seed, by about 0.1 point where the paper says 2: the sign agrees, the
    band lies inside the +-0.25 margin: agrees, smaller than claimed, and negligible in the verdicts' CSV."""
    shifts = [0.10, 0.12, 0.11, 0.09, 0.10]
    sweep = ablation_sweep(tmp_path / "sweep", depth_4=({"depth": "4"}, shifts, 0.0, 1.0, (900, 4000)))
    depth = findings_of(build_report(sweep))["depth 5->4", "error"]
    assert 0 < depth.interval[0] < depth.interval[1] < 0.25
    assert depth.verdict == "agrees, smaller" and depth.negligible and depth.reading.resolved
    assert main([str(sweep)]) == 0
    with (sweep / "verdicts.csv").open() as f:
        negligible = {v["change"] + " " + v["measure"]: v["negligible"] for v in csv.DictReader(f)}
    assert negligible.pop("depth 5->4 test_centre/top1_err") == "true" and set(negligible.values()) == {"false"}


def test_arms_that_differ_in_more_than_their_switch_are_confounded_not_read(tmp_path):
    """Plain pooling at even map sizes once gave a wider fc6 (713,866 against 550,026 parameters): a comparison of
    capacity. Its claim is `confounded`, with both sizes, and left out of the study's error control; the split's
    half-width net is meant to differ, and is read."""
    sweep = ablation_sweep(tmp_path / "sweep", pooling_plain=({"pooling": "plain"}, [-0.3] * 5, 0.0, 1.0,
                                                              (713_866, 11_900_000)))  # fmt: skip
    report = build_report(sweep)
    pooling = findings_of(report)["pooling overlap->plain", "error"]
    assert pooling.verdict == "confounded" and pooling.reading is None
    assert "713,866 against 1,000 parameters" in pooling.reason and "11.9 M against 0.005 M MACs" in pooling.reason
    assert findings_of(report)["split grouped->half", "error"].verdict == "contradicts"
    assert [f.reading.alpha for f in report.findings if f.reading] == [pytest.approx(0.05 / 8)] * 8
    assert main([str(sweep)]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "**confounded: the networks differ in more than the switch: 713,866" in markdown
    assert "| 713,866 | 11.9 M |" in markdown  # each configuration's parameters and MACs


def test_pca_noise_on_grey_images_is_not_applicable(tmp_path):
    sweep = tmp_path / "sweep"
    grey = {"data": {"channels": 1, "num_classes": 10, "scale": "raw"}, "schedule": {"name": "constant"}}
    for seed in range(3):
        write_run(sweep, seed, seed, config=grey, augment="paper", ablation="baseline")
        write_run(sweep, 3 + seed, seed, config=grey, augment="flip_crop", ablation="augment_no_pca")
    report = build_report(sweep)
    (pca,) = report.findings
    assert pca.verdict == "not applicable" and "single-channel" in pca.reason and pca.decided
    assert not report.top5  # 10 classes: top-5 errors say little, and the tables leave them out
    assert main([str(sweep)]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "top-5" not in markdown.split("## Configurations")[1].split("\n\n")[2]  # the table's header
    assert "over +1.0 |" in markdown and "Top-5 errors are left out" in markdown


@pytest.mark.parametrize(
    ("strength", "scale", "verdict"),
    [(0.5, "raw", "agrees"), (LRN_FLOOR / 10, "unit", "not testable here"), (None, "unit", "not testable here")],
)
def test_the_lrn_claim_is_read_only_where_the_lrn_does_more_than_divide_by_a_constant(tmp_path, strength, scale,
                                                                                         verdict):  # fmt: skip
    sweep = tmp_path / "sweep"
    config = {"data": {"channels": 3, "num_classes": 100, "scale": scale}}
    for seed in range(5):
        write_run(sweep, seed, seed, views=(0.2 + 0.01 * seed,) * 2, lrn_strength=strength, config=config,
                  ablation="baseline")  # fmt: skip
        shift = 0.014 + 0.001 * (seed % 2)
        write_run(sweep, 5 + seed, seed, views=(0.2 + 0.01 * seed + shift,) * 2, config=config, lrn="off",
                  ablation="lrn_off")  # fmt: skip
    lrn = findings_of(build_report(sweep))["lrn on->off", "error"]
    assert lrn.verdict == verdict
    if strength is None:
        assert "strength was not recorded (inputs at data.scale=unit)" in lrn.reason
    elif strength < LRN_FLOOR:
        assert f"is {strength:.2g} on average, below {LRN_FLOOR:g}" in lrn.reason


def test_speed_claims_are_read_only_at_a_constant_rate_on_a_clean_curve(tmp_path):
    """The paper's Figure 1 read a clean training error at each activation's constant rate: runs on a cosine schedule,
    or whose curve is the error as trained (dropout, augmentation), leave the speed claims not testable here."""
    for name, config, clean in (("cosine", {"schedule": {"name": "cosine"}}, True),
                                ("as_trained", {"schedule": {"name": "constant"}}, False)):  # fmt: skip
        sweep = tmp_path / name
        for seed in range(3):
            write_run(sweep, seed, seed, curve=curve_reaching(100 + seed), config=config, clean=clean,
                      ablation="baseline")  # fmt: skip
            write_run(sweep, 3 + seed, seed, curve=curve_reaching(300 + seed), config=config, clean=clean,
                      activation="tanh", ablation="activation_tanh")  # fmt: skip
        (tanh,) = build_report(sweep).findings
        assert tanh.verdict == "not testable here", name
        assert ("constant learning rate (these runs: cosine schedule)" if clean else "clean training error") in (
            tanh.reason)  # fmt: skip


def test_a_null_study_through_the_real_command_reads_no_effect_as_an_effect(tmp_path, capsys):
    """Every variant is the baseline plus noise (no true effect) over 10 seeds, read as a seeds=auto sweep at looks
    3..10: no claim is read as agreeing or contradicting, and every interval is at the study's Holm share over
    its looks, wider than a single 95% test's."""
    import numpy as np

    rng = np.random.default_rng(7)
    sweep, job = tmp_path / "sweep", 0
    arms = {k: v for k, v in ABLATIONS.items() if k != "activation_tanh"}
    base = rng.normal(0.20, 0.005, size=10)
    for ablation, (changes, *_, size) in arms.items():
        for seed in range(10):
            value = base[seed] + (0 if ablation == "baseline" else rng.normal(0, 0.004))
            write_run(
                sweep,
                job,
                seed,
                test=(value, 0.05),
                views=(value, value - 0.001 * rng.random()),
                val=(value, 0.05),
                train_eval=value - 0.02,
                size=size,
                ablation=ablation,
                **changes,
            )
            job += 1
    seed_rounds_yaml(sweep)
    assert main([str(sweep)]) == 0
    report = build_report(sweep)
    assert report.looks == Looks(3, 10)
    for f in report.findings:
        if f.change.startswith("test_views"):
            continue  # the ten crops are better in every run, by construction
        assert f.verdict not in ("agrees", "agrees, smaller", "contradicts"), (f.change, f.measured)
        if f.reading is not None and f.comparison.spread:
            plain = f.comparison.interval(0.95)
            assert f.interval[0] < plain[0] and plain[1] < f.interval[1]
    assert "repeated confidence interval" in (sweep / "report.md").read_text()


def test_a_seeds_auto_sweep_reads_its_intervals_over_its_looks(tmp_path):
    """The same runs read as a sweep of fixed seeds (one look: plain t at the Holm share) and as a seeds=auto sweep
    that may have stopped after any round from 3 to 10 (repeated intervals): the second are wider, exactly by the
    group sequential boundary at 5 of 10 seeds."""
    fixed = ablation_sweep(tmp_path / "fixed")
    seed_rounds_yaml(fixed, seeds=5)
    auto = ablation_sweep(tmp_path / "auto")
    seed_rounds_yaml(auto)
    one_look, looks = build_report(fixed), build_report(auto)
    assert one_look.looks == Looks() and looks.looks == Looks(3, 10)
    lrn_fixed, lrn_auto = (findings_of(r)["lrn on->off", "error"] for r in (one_look, looks))
    c = lrn_fixed.comparison
    share = lrn_fixed.reading.alpha
    assert lrn_fixed.interval == pytest.approx(c.around(stats.t.isf(share / 2, 4)))
    assert lrn_auto.interval == pytest.approx(c.around(Looks(3, 10).critical(share, 5, 4)))
    assert lrn_auto.interval[0] < lrn_fixed.interval[0]
    assert main([str(auto)]) == 0
    markdown = (auto / "report.md").read_text()
    assert "after each seed round from 3 to 10 seeds" in markdown and "O'Brien-Fleming" in markdown
    before = {p: p.read_bytes() for p in auto.rglob("*") if p.is_file()}
    for bad in ("0.5", "0", "nan"):
        with pytest.raises(ValueError, match="--alpha is the study's error rate"):
            main([str(auto), "--alpha", bad])
    assert {p: p.read_bytes() for p in auto.rglob("*") if p.is_file()} == before


def test_the_report_reads_a_seed_rounds_sweep_as_its_stopping_rule_did(tmp_path):
    """hydra.sweeper.margin / ratio_margin / threshold decided the sweep's verdicts: `alexlab report` on its
    directory uses them unless told otherwise, and says where the threshold came from; a bad one saved there is
    named in one line."""
    sweep = ablation_sweep(tmp_path / "sweep")
    seed_rounds_yaml(sweep, seeds=5, margin=2.0, ratio_margin=4.0, threshold=50.0)
    report = build_report(sweep)
    assert (report.margin, report.ratio_margin, report.threshold) == (2.0, 4.0, 50.0)
    assert report.threshold_reason == "the sweep's, hydra.sweeper.threshold"
    assert findings_of(report)["lrn on->off", "error"].shown_verdict == "agrees, negligible"  # +1.46 inside +-2
    given = build_report(sweep, margin=0.25, ratio_margin=1.1, threshold=25.0)
    assert (given.margin, given.ratio_margin, given.threshold_reason) == (0.25, 1.1, "chosen with --threshold")
    assert findings_of(given)["lrn on->off", "error"].shown_verdict == "agrees"
    seed_rounds_yaml(sweep, seeds=5, margin=-1.0)
    with pytest.raises(ValueError, match=r"multirun.yaml: hydra.sweeper.margin must be a finite number of points"):
        build_report(sweep)


def test_a_sweep_that_names_its_claims_reads_those_alone_at_their_own_share(tmp_path):
    """hydra.sweeper.claims: the claims a sweep is for (a switch, or a switch and a measure); the others are shown as
    not this sweep's, with the reason, and are neither read nor counted in the study's error rate (Holm over the
    named ones only). A name that is no claim's is one line naming the names."""
    sweep = ablation_sweep(tmp_path / "sweep")
    seed_rounds_yaml(sweep, seeds=5, claims=["depth.error", "test_views"])
    report = build_report(sweep)
    found = findings_of(report)
    read = {key for key, f in found.items() if f.verdict not in NOT_READ}
    assert read == {("depth 5->4", "error"), ("test_views ten_crop->centre (within each run)", "error")}
    for key, f in found.items():
        if key not in read:
            assert (
                f.verdict == "not this sweep's claim" and "depth.error, test_views (hydra.sweeper.claims)" in f.reason
            )
    assert all(found[key].reading.alpha == pytest.approx(0.05 / 2) for key in read)  # 2 claims, not 9
    everything = build_report(ablation_sweep(tmp_path / "all"))
    alone, among_all = found["depth 5->4", "error"], findings_of(everything)["depth 5->4", "error"]
    assert alone.comparison == among_all.comparison and alone.interval[1] - alone.interval[0] < (
        among_all.interval[1] - among_all.interval[0]
    )  # the same runs, a narrower interval: 2.5% against 5%/9
    assert main([str(sweep)]) == 0
    assert "not this sweep's claim" in (sweep / "report.md").read_text()
    seed_rounds_yaml(sweep, seeds=5, claims=["dropout.errors"])
    with pytest.raises(ValueError, match=r"hydra.sweeper.claims: no claim is named 'dropout.errors'; the names: "):
        build_report(sweep)


def test_claim_names_are_every_switch_and_measure_the_paper_claims_about():
    from alexlab.report.claims import check_claim_names, claim_names

    names = claim_names()
    assert {"dropout", "dropout.error", "dropout.gap", "dropout.steps", "activation.steps", "test_views.error",
            "lrn.error", "augment.gap"} <= set(names) and "lrn.steps" not in names  # fmt: skip
    assert check_claim_names(None, "") is None and check_claim_names(["lrn"], "") == ("lrn",) == check_claim_names(
        "lrn", ""
    )
    for bad in ("lrn.steps", [], [1], ["lrn", "lrn.steps"], 5, True, {"dropout": 1}, [["lrn"]], "", ["lrn", "lrn"]):
        with pytest.raises(ValueError, match="claims"):
            check_claim_names(bad, "hydra.sweeper.")


def test_claims_no_configuration_tests_are_named_and_unreadable_claims_are_refused(tmp_path):
    """A named claim that no row of the sweep tests is said so (report.unmatched, the method text, the stopping
    reason), not taken for decided; claims that cannot be read from multirun.yaml are one line, never read as
    "every claim" (which would share the error rate among claims the sweep did not name)."""
    from hydra_plugins.alexlab_seed_rounds.seed_rounds import SeedRoundsSweeper

    sweep = ablation_sweep(tmp_path / "sweep")  # no row changes augment
    seed_rounds_yaml(sweep, claims=["augment", "depth.error"])
    report = build_report(sweep)
    assert report.named == ("augment", "depth.error") and report.unmatched == ("augment",)
    assert main([str(sweep)]) == 0 and "no configuration tests augment" in (sweep / "report.md").read_text()
    rounds = SeedRoundsSweeper(seeds="auto", min_seeds=3, max_seeds=10)
    assert rounds.reason_to_stop(sweep, 5, report) is None  # depth is open: more seeds
    seed_rounds_yaml(sweep, claims=["augment"])
    reason = rounds.reason_to_stop(sweep, 5, build_report(sweep))
    assert "no configuration of this sweep tests augment (hydra.sweeper.claims)" in reason
    seed_rounds_yaml(sweep, claims="${oc.env:ALEXLAB_NO_SUCH_VARIABLE}")
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"multirun.yaml: hydra.sweeper.claims cannot be read \("):
        build_report(sweep)
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before


def relu_against_tanh(sweep, relu_curve, tanh_curve, seeds=3):
    """A speed sweep: the baseline (jobs 0..seeds-1) and activation_tanh (the next jobs), one run a seed each, with
    these clean training curves [(step, error)] at a constant rate; tanh_curve may be a function of the seed."""
    for seed in range(seeds):
        write_run(sweep, seed, seed, curve=relu_curve, ablation="baseline")
        curve = tanh_curve(seed) if callable(tanh_curve) else tanh_curve
        write_run(sweep, seeds + seed, seed, curve=curve, activation="tanh", ablation="activation_tanh")
    return sweep


def test_the_threshold_is_one_every_run_compared_on_speed_reaches(tmp_path):
    sweep = relu_against_tanh(
        tmp_path / "sweep", [(10, 0.6), (20, 0.3), (30, 0.2)], [(10, 0.8), (20, 0.5), (30, 0.324)]
    )
    report = build_report(sweep)
    assert report.threshold == 33.0 and "not reached by all" in report.threshold_reason
    base = report.baseline.runs[0]
    # interpolated between the bins' centres, 4.5 and 14.5 (rows at steps 10 and 20 of 10-batch bins)
    assert base.values["steps"] == pytest.approx(4.5 + 10 * (60 - 33) / (60 - 30))
    assert build_report(sweep, threshold=50).threshold == 50
    with pytest.raises(ValueError, match="between 0 and 100"):
        build_report(sweep, threshold=150)


def test_a_run_that_never_gets_there_counts_as_at_least_its_curves_end(tmp_path):
    """tanh barely learns (90% error throughout) while ReLU reaches 25% within 30 steps: tanh's runs never get there,
    and count at the last step their curve measured, a lower bound on their steps. The ratio's low end holds, so
    the claim reads "at least": agrees, tanh slower; its high end does not, so no size is read."""
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.6), (20, 0.3), (30, 0.1)],
                              lambda seed: [(10, 0.9), (20, 0.895), (300, 0.892 + 0.001 * seed)])  # fmt: skip
    report = build_report(sweep)
    assert report.threshold == 25.0 and "censored" in report.threshold_reason
    (tanh,) = report.findings
    assert tanh.censored == 3 and tanh.bounded == 1 and tanh.verdict == "agrees"
    assert all(run.censored and run.censored_at == {25.0: "never"} for run in report.rows[1].runs)
    assert tanh.measured.startswith("x") and "[at least x" in tanh.measured
    assert main([str(sweep)]) == 0
    assert "(+3 censored)" in (sweep / "report.md").read_text()


def test_a_run_already_there_at_its_first_point_cannot_be_counted(tmp_path):
    """ReLU is below 25% at its first point: when it got there the curve cannot say (counting its first point would
    make both sides alike, a ratio of 1); with tanh's runs never getting there either, no end of the interval holds:
    undecided, and more seeds could not change that."""
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.2), (20, 0.1), (30, 0.05)],
                              lambda seed: [(10, 0.9), (20, 0.895), (300, 0.892 + 0.001 * seed)])  # fmt: skip
    (tanh,) = build_report(sweep, threshold=25).findings
    assert tanh.verdict == "undecided" and tanh.censored == 6 and tanh.bounded == 2 and tanh.seeds_needed is None
    assert main([str(sweep), "--threshold", "25"]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "? (6 runs censored: another threshold)" in markdown
    with (sweep / "verdicts.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert row["verdict"] == "undecided" and row["censored"] == "6"


def test_the_speed_claims_are_read_at_each_threshold_asked_for(tmp_path):
    sweep = ablation_sweep(tmp_path / "sweep")
    report = build_report(sweep, threshold=[25, 15])
    tanh = [f for f in report.findings if f.change == "activation relu->tanh"]
    assert [f.threshold for f in tanh] == [25.0, 15.0] and report.thresholds == (25.0, 15.0)
    assert all(f.verdict == "agrees, smaller" for f in tanh)
    assert main([str(sweep), "--threshold", "25", "15"]) == 0
    assert "steps to 15% training error (clean)" in (sweep / "report.md").read_text()


def test_the_default_threshold_stays_below_every_first_point(tmp_path):
    """Every run gets down to 40.3%, but one starts at 40.8%: rounding up (41%) would censor it; the threshold
    goes halfway instead, and every run is measured."""
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.408), (20, 0.30), (30, 0.2)],
                              [(10, 0.9), (20, 0.5), (30, 0.403)])  # fmt: skip
    report = build_report(sweep)
    assert report.threshold == pytest.approx((40.3 + 40.8) / 2)
    assert not any(run.censored for run in report.runs) and all("steps" in run.values for run in report.runs)
    (tanh,) = report.findings
    assert tanh.censored == 0 and tanh.comparison.estimate > 0


def test_runs_that_never_reach_a_chosen_threshold_are_counted_not_dropped(tmp_path):
    """With --threshold 8, four of five tanh runs never get there: the one that does must not stand for the row
    (a ratio of the fastest run alone); all five count, those four at their curve's end, so the ratio is "at least"
    what they give."""
    tanh_curve = lambda seed: [(10, 0.8), (20, 0.5), (30, 0.07 if seed == 0 else 0.09)]
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.6), (20, 0.3), (30, 0.05)], tanh_curve, seeds=5)
    (tanh,) = build_report(sweep, threshold=8).findings
    assert tanh.censored == 4 and tanh.comparison.n_pairs == 5 and tanh.bounded == 1
    assert tanh.verdict in ("agrees", "undecided") and "at least" in tanh.measured
    (tanh,) = build_report(sweep).findings  # the default threshold (the worst lowest, rounded up) measures all
    assert tanh.censored == 0 and tanh.comparison.n_pairs == 5 and tanh.bounded == 0


def test_a_bins_point_is_the_middle_of_the_weights_it_measured():
    """Rows every 10 batches: the row at step 10 averages batches run on the weights after 0..9 steps (4.5), the
    row at 20 those after 10..19 (14.5); a last, shorter bin (steps 21..25) the weights after 20..24 (22)."""
    assert bin_centres([(10, 90.0), (20, 50.0), (25, 40.0)]) == [(4.5, 90.0), (14.5, 50.0), (22.0, 40.0)]
    assert bin_centres([(1, 90.0), (2, 80.0)]) == [(0.0, 90.0), (1.0, 80.0)]  # one batch a row
    fast, slow = [(10, 80.0), (20, 20.0)], [(10, 90.0), (20, 60.0), (30, 40.0), (40, 20.0)]
    assert steps_to(bin_centres(fast), 20.0) == 14.5 and steps_to(bin_centres(slow), 20.0) == 34.5


def test_steps_to_interpolates_and_censors():
    curve = [(10, 30.0), (20, 20.0), (30, 10.0)]
    assert steps_to(curve, 25.0) == pytest.approx(15.0)
    assert steps_to(curve, 20.0) == pytest.approx(20.0)
    assert steps_to(curve, 30.0) is None  # already there at the first point: when, the curve cannot say
    assert steps_to(curve, 5.0) is None  # never
    assert steps_to([], 25.0) is None


def test_identical_curves_stay_visible_and_say_so():
    from matplotlib.figure import Figure

    from alexlab.report import distinguish_lines

    axes = Figure().subplots()
    axes.plot([0, 1], [50.0, 40.0], label="dropout=on")
    axes.plot([0, 1], [50.0, 40.0], label="dropout=off")  # drawn over the first
    axes.plot([0, 1], [50.0, 30.0], label="depth=4")
    distinguish_lines(axes)
    first, second, third = axes.get_lines()
    assert second.get_label() == "dropout=off (the same values as dropout=on)"
    assert third.get_label() == "depth=4"
    assert len({line.get_marker() for line in axes.get_lines()}) == 3  # each its own marker and dash
    assert len({str(line.get_linestyle()) for line in axes.get_lines()}) == 3


def test_a_legend_of_many_lines_goes_beside_the_plot_where_it_covers_no_curve():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from alexlab.report import LEGEND_INSIDE, place_legend

    for lines in (2, LEGEND_INSIDE + 6):
        figure = Figure(figsize=(8, 5))
        axes = figure.subplots()
        for i in range(lines):
            axes.plot([0, 1, 2], [20 - i, 15 - i, 12 - i], label=f"ablation {i} (n=3)")
        place_legend(axes)
        renderer = FigureCanvasAgg(figure).get_renderer()
        legend, plot = axes.get_legend().get_window_extent(renderer), axes.get_window_extent(renderer)
        assert len(axes.get_legend().get_texts()) == lines
        if lines > LEGEND_INSIDE:
            assert legend.x0 > plot.x1  # wholly right of the axes
        else:
            assert plot.contains(legend.x0, legend.y0) and plot.contains(legend.x1, legend.y1)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("report",), "alexlab report: the following arguments are required: SWEEP_DIR (alexlab report --help)"),
        (("report", "x", "--metric", "foo"), "alexlab report: argument --metric: invalid choice: 'foo'"),
        (("report", "x", "--bogus"), "alexlab report: unrecognized arguments: --bogus"),
        (("dashboard", "x", "--online", "--offline"), "alexlab dashboard: argument --offline: not allowed with"),
    ],
)
def test_a_bad_argument_of_report_or_dashboard_is_one_line(tmp_path, args, expected):
    """argparse's usage block and exit would be eight lines: alexlab's parser raises one BadValue instead."""
    from helpers.commands import run_alexlab_here

    result = run_alexlab_here(*args, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"alexlab: error: {expected}"), lines
