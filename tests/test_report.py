"""`alexlab report`: hand-built sweep directories with known numbers, an Optuna study, and one real smoke sweep."""

import csv
import json
import math
import shutil
from dataclasses import replace

import matplotlib.image
import optuna
import pytest
import yaml
from conftest import read_metrics
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from scipy import stats

from alexlab.report import bin_centres, build_report, level_text, main, steps_to

BASE = {
    "model": "small",
    "depth": "5",
    "dropout": "on",
    "lrn": "on",
    "pooling": "overlap",
    "activation": "relu",
    "split": "grouped",
    "init": "paper",
    "augment": "flip_crop",
    "test_views": "centre",
    "data": "synthetic",
    "optimizer": "sgd",
    "schedule": "paper",
    "trainer": "smoke",
    "experiment": "smoke",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(
    sweep,
    job,
    seed=0,
    val=(0.3, 0.1),
    test=(0.32, 0.12),
    status="finished",
    error=None,
    train_eval=None,
    curve=None,
    **changes,
):
    """A job dir with a metrics.json: `changes` are switches (or, with a dot in the key, plain overrides);
    train_eval: the final train_eval top-1 error; curve: [(step, training top-1 error)]."""
    switches = BASE | {k: v for k, v in changes.items() if "__" not in k}
    settings = [f"{k.replace('__', '.')}={v}" for k, v in changes.items() if "__" in k]
    job_dir = sweep / str(job)
    job_dir.mkdir(parents=True)
    history = [{"epoch": e, "val/top1_err": val[0] + 0.1 * (2 - e), "val/top5_err": val[1]} for e in range(3)]
    metrics = {
        "status": status,
        "error": error,
        "task": "train",
        "objective": "val/top1_err",
        "final": {"val/top1_err": val[0], "val/top5_err": 0.99, "test/top1_err": test[0], "test/top5_err": test[1]}
        | ({} if train_eval is None else {"train_eval/top1_err": train_eval}),
        "best": {"val/top1_err": val[0], "val/top5_err": val[1], "epoch": 2},
        "history": history,
        "curve": [{"step": step, "train/top1_err": error, "train/loss": 1.0} for step, error in curve or []],
        "switches": switches,
        "seed": seed,
        "overrides": ["logger=none", *(f"{k}={v}" for k, v in changes.items() if "__" not in k), *settings]
        + [f"seed={seed}"],
    }
    (job_dir / "metrics.json").write_text(json.dumps(metrics))
    return job_dir


def write_multirun_yaml(sweep, **choices):
    config = {"seed": 0, "optimizer": {"lr": 0.01}, "hydra": {"runtime": {"choices": BASE | choices}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(config))


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
    assert len(verdict_lines) == 1 + 3  # dropout off: overfitting and speed; lrn off: the error


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
    (ten_crop,) = report.rows[1].claims
    assert (ten_crop.top1, ten_crop.top5, ten_crop.test_only) == (-1.5, -1.3, True)
    assert [(c.top1, c.top5) for c in report.rows[2].claims] == [(2.0, None)]
    assert report.rows[3].claims[0].top1 == -1.0  # adding PCA colour noise: the paper's "over 1 point" better
    assert report.rows[4].claims == report.rows[5].claims == report.rows[7].claims == ()
    (relu,) = report.rows[6].claims
    assert "6x faster" in relu.paper and relu.measure == "steps" and relu.ratio == 6.0
    assert report.rows[7].change == "init paper->default"
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "test_views centre->ten_crop: -1.5 / -1.3 (test only)" in printed
    assert "depth 5->4: about +2.0 / -" in printed
    assert "augment flip_crop->paper: under -1.0 / -" in printed
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
    bare = {"status": "finished", "final": {"test/top1_err": 0.5}, "best": {"val/top1_err": 0.45}}
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


def write_study(sweep, values, storage="optuna.journal"):
    """A journal study with one trial per value (None: a failed trial), and a run dir per trial."""
    storage_path = sweep / storage
    sweep.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name="lr_search", storage=JournalStorage(JournalFileBackend(str(storage_path))), direction="minimize"
    )
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    for number, value in enumerate(values):
        trial = study.ask(space)
        if value is None:
            trial.set_user_attr("error", "FloatingPointError: diverged")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        lr = trial.params["optimizer.lr"]
        write_run(sweep, number, val=(value or 0.9, 0.1), status="finished" if value else "failed", optimizer__lr=lr)
    spec = {"study_name": "lr_search", "storage": storage, "direction": "minimize", "objective": "val/top1_err"}
    (sweep / "optuna_study.yaml").write_text(yaml.safe_dump(spec | {"n_trials": len(values), "params": {}}))
    return study


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


def curve_reaching(target_step: int, threshold: float = 0.25, start: float = 0.9, end: float = 0.05):
    """A training curve every 10 steps, falling linearly so that it crosses `threshold` at `target_step` exactly
    as the report reads it: each row (logged at step s) at the middle of the weights its bin measured, s - 5.5."""
    steps = list(range(10, 4 * target_step + 1, 10))
    slope = (start - threshold) / target_step
    return [(step, max(end, start - slope * (step - 5.5))) for step in steps]


def ablation_sweep(tmp_path, seeds=5, depth_shifts=(3.0, -2.0, 2.5, -1.5, 0.5)):
    """The paper's ablations by hand, with effects built in: every seed shifts all rows alike (shared noise)."""
    sweep = tmp_path / "sweep"
    job = 0
    rows = {  # ablation -> (switch changes, test top-1 shift in points per seed, gap shift, steps factor)
        "baseline": ({}, [0.0] * seeds, 0.0, 1.0),
        "lrn_off": ({"lrn": "off"}, [1.4, 1.6, 1.5, 1.3, 1.5], 0.0, 1.0),  # worse on every seed: agrees
        "pooling_plain": ({"pooling": "plain"}, [0.02, -0.03, 0.01, 0.0, -0.01], 0.0, 1.0),  # no effect
        "split_half": ({"split": "half"}, [-0.9, -1.1, -1.0, -0.8, -1.2], 0.0, 1.0),  # better: contradicts
        "depth_4": ({"depth": "4"}, list(depth_shifts), 0.0, 1.0),  # noisy by default: undecided
        "dropout_off": ({"dropout": "off"}, [0.5] * seeds, 4.0, 0.5),  # overfits, learns in half the steps
        "activation_tanh": ({"activation": "tanh"}, [0.0] * seeds, 0.0, 3.0),  # 3x the steps
    }
    for ablation, (changes, shifts, gap, factor) in rows.items():
        for seed in range(seeds):
            noise = 0.01 * seed  # shared by every row of this seed
            test = 0.20 + noise + shifts[seed] / 100
            val = 0.19 + noise + shifts[seed] / 100
            train_eval = val - 0.02 - gap / 100
            curve = curve_reaching(round(100 * factor * (1 + 0.05 * seed)))
            write_run(sweep, job, seed, val=(val, 0.05), test=(test, 0.05), train_eval=train_eval, curve=curve,
                      ablation=ablation, **changes)  # fmt: skip
            job += 1
    return sweep


def test_each_claim_is_decided_on_its_own_measure(tmp_path):
    sweep = ablation_sweep(tmp_path)
    report = build_report(sweep)
    found = {(f.change, f.measure): f for f in report.findings}
    assert {key: f.verdict for key, f in found.items()} == {
        ("lrn on->off", "test/top1_err"): "agrees",
        ("pooling overlap->plain", "test/top1_err"): "no effect",
        ("split grouped->half", "test/top1_err"): "contradicts",
        ("depth 5->4", "test/top1_err"): "undecided",
        ("dropout on->off", "gap"): "agrees",
        ("dropout on->off", "steps"): "agrees",  # fewer steps without dropout: the paper's 2x
        ("activation relu->tanh", "steps"): "agrees",
    }
    assert report.threshold == 25.0 and "paper" in report.threshold_reason
    lrn = found["lrn on->off", "test/top1_err"]
    assert lrn.comparison.test == "paired t" and lrn.comparison.n_pairs == 5
    assert lrn.comparison.estimate == pytest.approx(1.46, abs=1e-9)
    assert lrn.improvement.probability == 0.0  # never better without LRN
    tanh = found["activation relu->tanh", "steps"]
    ratio, low, high = tanh.comparison.ratio
    assert ratio == pytest.approx(3.0, rel=1e-6) and low <= ratio <= high
    gap = found["dropout on->off", "gap"]
    assert gap.comparison.estimate == pytest.approx(4.0, abs=1e-6)
    depth = found["depth 5->4", "test/top1_err"]
    assert depth.seeds_needed is not None and depth.seeds_needed > 5  # more seeds would decide it
    assert all(f.seeds_needed is None for f in report.findings if f.verdict != "undecided")
    assert len(report.undecided()) == 1


def test_verdicts_reach_the_markdown_csv_and_plot(tmp_path, capsys):
    sweep = ablation_sweep(tmp_path)
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "Verdicts on the paper's claims" in printed and "**contradicts**" in printed
    markdown = (sweep / "report.md").read_text()
    assert "7 claims: 4 agrees, 1 contradicts, 1 no effect, 1 undecided." in markdown
    assert "25% training error (the paper's, from Figure 1" in markdown
    with (sweep / "verdicts.csv").open() as f:
        verdicts = list(csv.DictReader(f))
    assert len(verdicts) == 7
    tanh = next(v for v in verdicts if v["change"] == "activation relu->tanh")
    assert tanh["scale"] == "ratio" and float(tanh["estimate"]) == pytest.approx(3.0, rel=1e-6)
    assert tanh["verdict"] == "agrees" and tanh["test"] == "paired t" and tanh["n_pairs"] == "5"
    depth = next(v for v in verdicts if v["change"] == "depth 5->4")
    assert depth["verdict"] == "undecided" and int(depth["seeds_needed"]) > 5
    with (sweep / "report.csv").open() as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    dropout = next(r for label, r in rows.items() if "dropout_off" in label)
    assert "gap (val - train_eval top-1): agrees" in dropout["verdicts"]
    assert float(dropout["gap_diff"]) == pytest.approx(4.0, abs=1e-6) and dropout["gap_test"] == "paired t"
    image = matplotlib.image.imread(sweep / "report_verdicts.png")
    assert image.ndim == 3 and image.shape[0] > 300  # three panels: errors, gaps, steps


def test_an_effect_real_in_sign_but_inside_the_margin_is_shown_negligible(tmp_path):
    """Removing conv4 raises the error on every seed, by about 0.1 point where the paper says 2: the interval excludes
    0 on the claim's side (agrees) and lies inside the +-0.25 margin, so the table, the CSV and the plot say
    negligible; with a margin of 0.05 the same interval is an agreement, smaller than claimed."""
    sweep = ablation_sweep(tmp_path, depth_shifts=(0.10, 0.12, 0.11, 0.09, 0.10))
    depth = next(f for f in build_report(sweep).findings if f.change == "depth 5->4")
    assert 0 < depth.comparison.low < depth.comparison.high < 0.25
    assert depth.verdict == "agrees" and depth.negligible and depth.shown_verdict == "agrees, negligible"
    assert main([str(sweep)]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "| **agrees, negligible** |" in markdown and "marked negligible" in markdown
    assert "5 agrees, 1 contradicts, 1 no effect." in markdown  # the tally counts verdicts, not qualifiers
    with (sweep / "verdicts.csv").open() as f:
        negligible = {v["change"] + " " + v["measure"]: v["negligible"] for v in csv.DictReader(f)}
    assert negligible.pop("depth 5->4 test/top1_err") == "true" and set(negligible.values()) == {"false"}
    strict = next(f for f in build_report(sweep, margin=0.05).findings if f.change == "depth 5->4")
    assert strict.verdict == "agrees" and not strict.negligible
    assert strict.shown_verdict == "agrees, smaller than claimed"  # +0.1 where the paper says 2


def test_an_agreement_says_whether_it_is_smaller_or_larger_than_the_papers_effect(tmp_path):
    """tanh takes 3x the steps where the paper says 6x: agrees, smaller than claimed; LRN's +1.46 holds the
    paper's +1.4 in its interval: plain agrees; removing conv4 costs 3 points where the paper says 2: larger. A
    contradiction and a gap claim (no number) get no size."""
    sweep = ablation_sweep(tmp_path, depth_shifts=(3.0, 3.1, 2.9, 3.0, 3.05))
    found = {(f.change, f.measure): f for f in build_report(sweep).findings}
    tanh = found["activation relu->tanh", "steps"]
    assert (tanh.verdict, tanh.size, tanh.shown_verdict) == ("agrees", "smaller", "agrees, smaller than claimed")
    lrn = found["lrn on->off", "test/top1_err"]
    assert lrn.comparison.low < 1.4 < lrn.comparison.high and (lrn.size, lrn.shown_verdict) == ("", "agrees")
    depth = found["depth 5->4", "test/top1_err"]
    assert depth.comparison.low > 2.0 and depth.shown_verdict == "agrees, larger than claimed"
    assert found["split grouped->half", "test/top1_err"].size == ""  # contradicts
    assert found["dropout on->off", "gap"].size == ""  # "substantial overfitting": no number to compare with
    assert main([str(sweep)]) == 0
    assert "| **agrees, smaller than claimed** |" in (sweep / "report.md").read_text()
    with (sweep / "verdicts.csv").open() as f:
        sizes = {v["change"] + " " + v["measure"]: v["size"] for v in csv.DictReader(f)}
    assert sizes["activation relu->tanh steps"] == "smaller" and sizes["depth 5->4 test/top1_err"] == "larger"
    from alexlab.report import PAPER_CLAIMS, size_against_paper

    (over_one_point,) = PAPER_CLAIMS["augment", "paper", "flip_crop"]  # PCA noise: "over 1 point"
    above = replace(depth.comparison, estimate=3.0, low=2.9, high=3.1)
    assert size_against_paper(above, over_one_point) == ""  # more than a lower bound is as claimed
    assert size_against_paper(replace(above, estimate=0.5, low=0.4, high=0.6), over_one_point) == "smaller"


def relu_against_tanh(sweep, relu_curve, tanh_curve, seeds=3):
    """A speed sweep: the baseline (jobs 0..seeds-1) and activation_tanh (the next jobs), one run a seed each, with
    these training curves [(step, error)]; tanh_curve may be a function of the seed."""
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


def seed_rounds_yaml(sweep, seeds="auto", min_seeds=3, max_seeds=10, **options):
    """multirun.yaml as the seed rounds sweeper saves it (its keys interpolated from the sweep file's); options:
    its margin, ratio_margin, threshold."""
    sweeper = "hydra_plugins.alexlab_seed_rounds.seed_rounds.SeedRoundsSweeper"
    config = {"seeds": seeds, "max_seeds": max_seeds,
              "hydra": {"sweeper": {"_target_": sweeper, "seeds": "${seeds}", "min_seeds": min_seeds,
                                    "max_seeds": "${max_seeds}", "margin": None, "ratio_margin": None,
                                    "threshold": None} | options, "runtime": {"choices": BASE}}}  # fmt: skip
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(config))


def test_the_report_reads_a_seed_rounds_sweep_as_its_stopping_rule_did(tmp_path):
    """hydra.sweeper.margin / ratio_margin / threshold decided the sweep's verdicts: `alexlab report` on its
    directory uses them unless told otherwise, and says where the threshold came from; a bad one saved there is
    named in one line."""
    sweep = ablation_sweep(tmp_path)
    seed_rounds_yaml(sweep, seeds=5, margin=2.0, ratio_margin=4.0, threshold=50.0)
    report = build_report(sweep)
    assert (report.margin, report.ratio_margin, report.threshold) == (2.0, 4.0, 50.0)
    assert report.threshold_reason == "the sweep's, hydra.sweeper.threshold"
    verdicts = {(f.change, f.measure): f.shown_verdict for f in report.findings}
    assert verdicts["activation relu->tanh", "steps"] == "agrees, negligible"  # 3x is inside 1/4..4
    assert verdicts["lrn on->off", "test/top1_err"] == "agrees, negligible"  # +1.46 is inside +-2
    given = build_report(sweep, margin=0.25, ratio_margin=1.1, threshold=25.0)
    assert (given.margin, given.ratio_margin, given.threshold_reason) == (0.25, 1.1, "chosen with --threshold")
    verdicts = {(f.change, f.measure): f.shown_verdict for f in given.findings}
    assert verdicts["lrn on->off", "test/top1_err"] == "agrees"
    seed_rounds_yaml(sweep, seeds=5, margin=-1.0)
    with pytest.raises(ValueError, match=r"multirun.yaml: hydra.sweeper.margin must be a finite number of points"):
        build_report(sweep)


def test_a_seeds_auto_sweep_reads_each_look_at_95_percent_shared_out_over_its_looks(tmp_path, capsys):
    """seeds=auto may stop after any round from min_seeds (3) to max_seeds (10): 8 looks, each read at
    1 - 5%/8 = 99.375%, so that stopping at the first decided look keeps false verdicts at 5%. The same runs with
    a fixed number of seeds are read at 95%; --confidence overrides both."""
    fixed = ablation_sweep(tmp_path / "fixed", depth_shifts=(0.2, 0.9, 0.4, 0.8, 0.2))
    seed_rounds_yaml(fixed, seeds=5)
    auto = ablation_sweep(tmp_path / "auto", depth_shifts=(0.2, 0.9, 0.4, 0.8, 0.2))
    seed_rounds_yaml(auto)
    at_95, sequential = build_report(fixed), build_report(auto)
    assert (at_95.confidence, at_95.looks, at_95.level) == (0.95, 1, "95%")
    assert sequential.looks == 8 and sequential.confidence == pytest.approx(0.99375) and sequential.level == "99.4%"
    depth_95 = next(f for f in at_95.findings if f.change == "depth 5->4")
    depth_seq = next(f for f in sequential.findings if f.change == "depth 5->4")
    assert depth_95.comparison.estimate == pytest.approx(depth_seq.comparison.estimate)
    assert depth_seq.comparison.low < depth_95.comparison.low and depth_95.comparison.high < depth_seq.comparison.high
    pairs = [[r.values["test/top1_err"] for r in row.runs] for row in (depth_row(at_95), at_95.baseline)]
    reference = stats.ttest_rel(*pairs).confidence_interval(0.99375)
    assert (depth_seq.comparison.low, depth_seq.comparison.high) == (
        pytest.approx(reference.low), pytest.approx(reference.high))  # fmt: skip
    assert depth_95.verdict == "agrees" and depth_seq.verdict == "undecided"
    assert depth_seq.seeds_needed > depth_95.comparison.n_pairs
    plain = build_report(auto, confidence=0.95)
    assert depth_row(plain).differences == depth_row(at_95).differences
    assert "does not account for" in level_text(plain) and "99.4%" in level_text(plain)  # says what it gives up
    assert level_text(at_95) == "" and replace(at_95, confidence=1 - 1e-5).level == "99.999%"  # never "100%"
    assert main([str(auto)]) == 0
    markdown = (auto / "report.md").read_text()
    assert "measured Δ [99.4% CI]" in markdown and "(8 looks)" in markdown and "Bonferroni" in markdown
    with (auto / "verdicts.csv").open() as f:
        assert [float(v["confidence"]) for v in csv.DictReader(f)] == [pytest.approx(0.99375)] * 7
    before = {p: p.read_bytes() for p in auto.rglob("*") if p.is_file()}
    for bad in ("1", "0", "95", "nan"):
        with pytest.raises(ValueError, match="--confidence is a level between 0 and 1"):
            main([str(auto), "--confidence", bad])
    assert {p: p.read_bytes() for p in auto.rglob("*") if p.is_file()} == before


def depth_row(report):
    return next(row for row in report.rows if row.change == "depth 5->4")


def test_a_run_past_the_threshold_at_its_first_point_is_censored_not_counted_at_that_point(tmp_path):
    """tanh barely learns (90% error throughout); ReLU starts at 60%: no threshold is reached by every run after
    its first point. Counting ReLU's runs at their first point would make both sides equally fast (x1.00, a
    spread of 0: "no effect" on the paper's 6x); censored, the claim stays undecided and the tables say why."""
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.6), (20, 0.3), (30, 0.1)],
                              lambda seed: [(10, 0.9), (20, 0.895), (300, 0.892 + 0.001 * seed)])  # fmt: skip
    report = build_report(sweep)
    assert report.threshold == 25.0 and "censored" in report.threshold_reason
    (tanh,) = report.findings
    assert tanh.verdict == "undecided" and tanh.censored == 3 and tanh.seeds_needed is None
    assert all(run.censored and "steps" not in run.values for run in report.rows[1].runs)
    assert main([str(sweep)]) == 0
    markdown = (sweep / "report.md").read_text()
    assert "? (3 runs censored: another threshold)" in markdown and "(+3 censored)" in markdown
    with (sweep / "verdicts.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert row["verdict"] == "undecided" and row["censored"] == "3"
    # between the highest lowest error (89.4%) and the lowest first point (60%) there is no threshold: the
    # default never picks one that ReLU passed before its first point, even rounded up
    assert not report.threshold >= 60


def test_the_default_threshold_stays_below_every_first_point(tmp_path):
    """Every run gets down to 40.3%, but one starts at 40.8%: rounding up (41%) would censor it; the threshold
    goes halfway instead, and every run is measured."""
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.408), (20, 0.30), (30, 0.2)],
                              [(10, 0.9), (20, 0.5), (30, 0.403)])  # fmt: skip
    report = build_report(sweep)
    assert report.threshold == pytest.approx((40.3 + 40.8) / 2)
    assert not any(run.censored for run in report.runs) and all("steps" in run.values for run in report.runs)
    (tanh,) = report.findings
    assert tanh.verdict == "agrees" and tanh.censored == 0


def test_runs_that_never_reach_a_chosen_threshold_are_censored_not_dropped(tmp_path):
    """With --threshold 8, four of five tanh runs never get there: the one that does must not stand for the row
    (a ratio of the fastest run alone); the claim is undecided with the count of censored runs."""
    tanh_curve = lambda seed: [(10, 0.8), (20, 0.5), (30, 0.07 if seed == 0 else 0.09)]
    sweep = relu_against_tanh(tmp_path / "sweep", [(10, 0.6), (20, 0.3), (30, 0.05)], tanh_curve, seeds=5)
    (tanh,) = build_report(sweep, threshold=8).findings
    assert tanh.verdict == "undecided" and tanh.censored == 4
    (tanh,) = build_report(sweep).findings  # the default threshold (the worst lowest, rounded up) measures all
    assert tanh.censored == 0 and tanh.comparison.n_pairs == 5


def test_a_bins_point_is_the_middle_of_the_weights_it_measured():
    """Rows every 10 batches: the row at step 10 averages batches run on the weights after 0..9 steps (4.5), the
    row at 20 those after 10..19 (14.5); a last, shorter bin (steps 21..25) the weights after 20..24 (22)."""
    assert bin_centres([(10, 90.0), (20, 50.0), (25, 40.0)]) == [(4.5, 90.0), (14.5, 50.0), (22.0, 40.0)]
    assert bin_centres([(1, 90.0), (2, 80.0)]) == [(0.0, 90.0), (1.0, 80.0)]  # one batch a row
    # a run whose 2nd bin reaches 20% got there on the weights after 14.5 steps, one whose 4th does after 34.5:
    # 2.4x the steps, where the logged steps (20 and 40) would say 2x
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


def test_the_probability_of_improvement_says_when_it_has_no_interval():
    from alexlab.report import cell_improvement
    from alexlab.stats import Improvement, probability_of_improvement

    one_pair = probability_of_improvement({0: 9.0}, {0: 9.5})  # one seed a side: the variant won its only pair
    assert (one_pair.probability, one_pair.low, one_pair.high) == (1.0, None, None)
    assert cell_improvement(one_pair) == "1.00 [n/a]"
    assert cell_improvement(Improvement(0.75, 0.5, 1.0, paired=True)) == "0.75 [0.50, 1.00]"
    assert cell_improvement(Improvement(None, None, None, paired=False)) == ""  # nothing to compare


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
