"""Sweeps through the real command: grids, named sweeps, failures that do not stop a sweep, resuming."""

import csv
import json
import re
import shutil

import pytest
from helpers.commands import FEW_BATCHES, read_metrics, run_alexlab, run_dirs
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from alexlab.sweep import sweep_file
from alexlab.wandb_runs import find_runs

SMOKE = ("experiment=smoke", "logger=csv")
PAPER_SWITCHES = ("depth", "dropout", "lrn", "pooling", "activation", "split", "augment", "test_views")


def job_dirs(sweep_dir):
    return sorted((p for p in sweep_dir.iterdir() if (p / "metrics.json").exists()), key=lambda p: int(p.name))


def test_a_2x2_grid_gives_4_runs_in_one_sweep_dir_and_a_4_row_report(smoke_grid, tmp_path):
    sweep_dir = tmp_path / "grid"  # alexlab -m experiment=smoke dropout=on,off depth=5,3 (conftest.py), copied:
    shutil.copytree(smoke_grid, sweep_dir)  # the report below rewrites its files, which other test processes read
    runs = job_dirs(sweep_dir)
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    combos = {(read_metrics(p)["switches"]["dropout"], read_metrics(p)["switches"]["depth"]) for p in runs}
    assert combos == {("on", "5"), ("on", "3"), ("off", "5"), ("off", "3")}
    assert all(read_metrics(p)["status"] == "finished" for p in runs)
    params = {read_metrics(p)["switches"]["depth"]: read_metrics(p)["parameters"] for p in runs}
    assert params["3"] < params["5"]
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert summary["runs"] == 4 and summary["by_status"] == {"finished": 4}
    with open(sweep_dir / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert [row["is_baseline"] for row in rows].count("1") == 1

    again = run_alexlab("report", str(sweep_dir), "--baseline", "dropout=off,depth=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "baseline" in again.stdout and "depth=3, dropout=off" in again.stdout
    missing = run_alexlab("report", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("alexlab: error: sweep directory not found")
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    for bad in (["--margin", "inf"], ["--margin", "-1"], ["--ratio-margin", "nan"], ["--threshold", "100"]):
        refused = run_alexlab("report", str(sweep_dir), *bad, cwd=tmp_path)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, (bad, refused.stderr)
        assert refused.stderr.startswith("alexlab: error: --"), refused.stderr
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before  # the report stays as it was


def test_two_sweeps_started_together_get_distinct_dirs(alexlab, tmp_path):
    quick = ("trainer.max_epochs=1", "trainer.limit_train_batches=1", "test_after_fit=false", "logger=none")
    alexlab("-m", *SMOKE, *quick, "seed=0")
    alexlab("-m", *SMOKE, *quick, "seed=0")
    sweeps = sorted((tmp_path / "outputs" / "sweeps").iterdir())
    assert len(sweeps) == 2 and sweeps[0].name != sweeps[1].name
    assert all((s / "0" / "metrics.json").exists() for s in sweeps)


def test_a_crashing_and_a_diverging_run_are_recorded_and_the_sweep_goes_on(alexlab, tmp_path):
    sweep_dir = tmp_path / "bad"
    # job 2 diverges (an absurd learning rate), jobs 1 and 3 crash at setup (a batch size of -1), job 0 is fine
    result = alexlab(
        *("-m", "experiment=smoke", "trainer.max_epochs=1", *FEW_BATCHES, "optimizer.lr=0.01,1e8"),
        *("data.batch_size=32,-1", f"hydra.sweep.dir={sweep_dir}"),
    )
    by_params = {}
    for metrics in (read_metrics(p) for p in job_dirs(sweep_dir)):
        overrides = dict(o.split("=", 1) for o in metrics["overrides"])
        by_params[(float(overrides["optimizer.lr"]), int(overrides["data.batch_size"]))] = metrics
    assert by_params[(0.01, 32)]["status"] == "finished"
    diverged = by_params[(1e8, 32)]
    assert diverged["status"] == "diverged" and "diverged: train loss is " in diverged["error"]
    assert diverged["error"].split(" is ")[1].split()[0] in ("nan", "inf")  # the loss overflows to either
    crashed = by_params[(0.01, -1)]
    assert crashed["status"] == "failed" and "batch_size" in crashed["error"]
    assert "Traceback" in crashed["traceback"]
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert summary["by_status"] == {"finished": 1, "failed": 2, "diverged": 1}
    assert {f["run"] for f in summary["not_finished"]} == {"1", "2", "3"}
    line = next(x for x in (result.stdout + result.stderr).splitlines() if "4 runs (" in x)
    assert "1 finished" in line and "2 failed" in line and "1 diverged" in line
    report = (sweep_dir / "report.md").read_text()
    assert "diverged" in report  # failed runs are listed in the report, not dropped
    # each job closed its own W&B run, the failed one with a failing exit code and its error in the summary
    wandb_runs = {run.path.parents[2].name: run for run in find_runs(sweep_dir)}
    assert set(wandb_runs) == {"0", "2"}  # jobs 1 and 3 failed before W&B started
    assert wandb_runs["0"].exit_code == 0 and wandb_runs["0"].summary["status"] == "finished"
    assert wandb_runs["2"].exit_code == 1 and "diverged" in wandb_runs["2"].summary["error"]


def test_a_sweep_where_every_run_fails_exits_non_zero_with_one_line(alexlab, tmp_path):
    result = alexlab("-m", *SMOKE, "data.batch_size=-1,-2", f"hydra.sweep.dir={tmp_path / 'all_bad'}", expect_ok=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("alexlab: error:")]
    assert len(errors) == 1 and "no run of the sweep finished (2 runs)" in errors[0] and "batch_size" in errors[0]


def test_rerunning_an_interrupted_sweep_skips_finished_runs(alexlab, tmp_path):
    sweep_dir = tmp_path / "resume"
    args = ("-m", *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}")
    alexlab(*args)
    # an interruption: run 1 was killed mid-training, run 2 never started
    first = read_metrics(sweep_dir / "0")
    (sweep_dir / "1" / "metrics.json").write_text(json.dumps({**read_metrics(sweep_dir / "1"), "status": "running"}))
    for path in sorted((sweep_dir / "2").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (sweep_dir / "2").rmdir()
    saved = {p: p.read_bytes() for p in (sweep_dir / "0" / ".hydra").iterdir()}
    assert sorted(p.name for p in saved) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    log = (sweep_dir / "0" / "alexlab.log").read_bytes()
    assert b"finished in" in log

    elsewhere = tmp_path / "elsewhere"  # resumed from another working directory
    elsewhere.mkdir()
    result = run_alexlab(*args, f"paths.output_root={tmp_path / 'outputs'}", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "continuing the sweep" in out
    assert "already finished in" in out and str(sweep_dir / "0") in out
    assert read_metrics(sweep_dir / "0") == first  # untouched
    # and so are the configs it ran with: Hydra saves a job's configs before the job starts, and would have written
    # the resuming command's (its working directory in hydra.yaml) over them although the job did not run again
    assert {p: p.read_bytes() for p in (sweep_dir / "0" / ".hydra").iterdir()} == saved
    assert (sweep_dir / "0" / "alexlab.log").read_bytes() == log  # its log too: the skip is said in the terminal
    rerun = OmegaConf.load(sweep_dir / "1" / ".hydra" / "hydra.yaml")  # a job that ran again: its new configs
    assert rerun.hydra.runtime.cwd == str(elsewhere)
    assert read_metrics(sweep_dir / "1")["status"] == "finished"
    assert read_metrics(sweep_dir / "2")["status"] == "finished"
    assert out.count("already finished in") == 1


def test_another_sweep_into_a_used_sweep_dir_is_refused_before_anything_is_written(alexlab, tmp_path):
    sweep_dir = tmp_path / "taken"
    alexlab("-m", *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "dropout=on,off", f"hydra.sweep.dir={sweep_dir}")
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    result = alexlab("-m", *SMOKE, "trainer.max_epochs=1", "depth=5,3", f"hydra.sweep.dir={sweep_dir}", expect_ok=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("alexlab: error:") and "another sweep" in result.stderr
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before


def test_help_lists_the_named_sweeps_and_an_unknown_name_is_one_line(tmp_path):
    help_text = run_alexlab("--help", cwd=tmp_path).stdout
    names = (
        "dropout_speed",
        "figure1_pilot",
        "follow_up",
        "paper_ablations",
        "regime_pilot",
        "relu_speed",
        "search",
        "seeds_grid",
    )
    for name in names:
        assert name in help_text
    result = run_alexlab("sweep", "nosuch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"alexlab: error: no sweep named 'nosuch'; choose one of: {', '.join(names)} (or a path to a .yaml)"
    )


def compose_sweep(name: str, overrides: list[str]):
    path = sweep_file(name)
    with initialize_config_dir(str(path.parent), version_base="1.3"):
        return compose(path.stem, overrides=overrides, return_hydra_config=True)


def test_each_paper_ablation_changes_exactly_one_switch_of_the_papers_baseline():
    ablations = compose_sweep("paper_ablations", []).hydra.sweeper.params["+ablation"].split(",")
    assert len(ablations) == 8 and ablations[0] == "baseline"
    switches = {}
    for ablation in ablations:
        choices = compose_sweep("paper_ablations", [f"+ablation={ablation}"]).hydra.runtime.choices
        switches[ablation] = {name: choices[name] for name in PAPER_SWITCHES}
    baseline = switches.pop("baseline")
    assert baseline == {
        "depth": "5",
        "dropout": "on",
        "lrn": "on",
        "pooling": "overlap",
        "activation": "relu",
        "split": "grouped",
        "augment": "paper",
        "test_views": "ten_crop",
    }
    changed = {}
    for ablation, values in switches.items():
        differ = {k: v for k, v in values.items() if v != baseline[k]}
        assert len(differ) == 1, (ablation, differ)
        changed.update(differ)
    # the ten-crop claim is read within each run (both views, every run); ReLU's speed in its own sweep (relu_speed)
    assert changed == {
        "lrn": "off",
        "pooling": "plain",
        "dropout": "off",
        "depth": "4",
        "split": "half",
        "augment": "none",  # augment_none; augment_no_pca's flip_crop is checked below
    }
    no_pca = compose_sweep("paper_ablations", ["+ablation=augment_no_pca"]).hydra.runtime.choices
    assert no_pca["augment"] == "flip_crop"
    # the ablation wins over an experiment that sets the same switch (quickstart turns LRN off)
    quick = compose_sweep("paper_ablations", ["+ablation=baseline", "experiment=quickstart"]).hydra.runtime.choices
    assert quick["lrn"] == "on" and quick["data"] == "fashion_mnist"


def test_the_paper_ablations_sweep_runs_end_to_end_with_the_claims_beside_the_results(alexlab, tmp_path):
    sweep_dir = tmp_path / "ablations"
    result = run_alexlab(
        "sweep",
        "paper_ablations",
        "seeds=1",
        "experiment=smoke",
        "logger=none",
        "trainer.max_epochs=1",
        *FEW_BATCHES,
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = job_dirs(sweep_dir)
    assert len(runs) == 8
    assert {read_metrics(p)["switches"]["ablation"] for p in runs} == {
        "baseline",
        "lrn_off",
        "pooling_plain",
        "dropout_off",
        "depth_4",
        "split_half",
        "augment_no_pca",
        "augment_none",
    }
    report = (sweep_dir / "report.md").read_text()
    assert "+1.4" in report and "+1.7" in report  # the paper's claims for lrn off and split half
    assert "test_views ten_crop->centre (within each run)" in report  # both views of every baseline run
    # one seed a side: every claim that can be read has a measured difference but no interval yet
    verdicts = report.split("## Verdicts on the paper's claims")[1].split("\n\n")[1]
    assert "undecided" in verdicts and "agrees" not in verdicts and "contradicts" not in verdicts


TWO_ABLATIONS = (
    "experiment=smoke",
    "logger=none",
    "trainer.max_epochs=1",
    *FEW_BATCHES,
    "hydra.sweeper.params={+ablation: 'baseline,lrn_off'}",
)


def test_seeds_auto_runs_seed_rounds_until_max_seeds_and_resumes_where_it_left(tmp_path):
    sweep_dir = tmp_path / "auto"
    args = ("sweep", "paper_ablations", "seeds=auto", "max_seeds=2", "hydra.sweeper.min_seeds=2", *TWO_ABLATIONS)
    result = run_alexlab(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = {p.name: read_metrics(p) for p in job_dirs(sweep_dir)}
    # round r: configuration i with seed r, numbered r x 2 + i; lrn_off's one claim cannot be read on this smoke data
    # (its LRN divides by a near constant), so after round 0 it gets no more seeds: no job 3
    assert {name: (m["seed"], m["switches"]["ablation"]) for name, m in runs.items()} == {
        "0": (0, "baseline"), "1": (0, "lrn_off"), "2": (1, "baseline"),
    }  # fmt: skip
    (stopped,) = [line for line in (result.stdout + result.stderr).splitlines() if "gets no more seeds" in line]
    assert "ablation=lrn_off" in stopped and stopped.endswith("gets no more seeds: its claims are decided")
    assert all("seeds=auto" not in m["overrides"] for m in runs.values())  # how long, not what: not the run's identity
    with (sweep_dir / "verdicts.csv").open() as f:
        ten_crop, lrn = list(csv.DictReader(f))
    assert lrn["change"] == "lrn on->off" and lrn["verdict"] == "not testable here" and lrn["n_pairs"] == "1"
    assert ten_crop["change"].startswith("test_views") and ten_crop["test"] == "paired t" and ten_crop["n_pairs"] == "2"
    before = {name: (sweep_dir / name / "metrics.json").read_bytes() for name in runs}
    again = run_alexlab(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # the same command: nothing trains again
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already finished") + again.stderr.count("already finished") == 3
    assert {name: (sweep_dir / name / "metrics.json").read_bytes() for name in runs} == before
    more = run_alexlab("sweep", "paper_ablations", "seeds=3", *TWO_ABLATIONS, f"hydra.sweep.dir={sweep_dir}",
                       cwd=tmp_path)  # fmt: skip
    assert more.returncode == 0, more.stderr  # the same sweep with fixed seeds: every arm each round, jobs 3 to 5
    assert sorted(p.name for p in job_dirs(sweep_dir)) == ["0", "1", "2", "3", "4", "5"]


def test_seeds_auto_stops_at_its_time_budget(tmp_path):
    sweep_dir = tmp_path / "budget"
    args = ("sweep", "paper_ablations", "seeds=auto", "time_budget_h=0.000001", *TWO_ABLATIONS)
    result = run_alexlab(*args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(job_dirs(sweep_dir)) == 2  # one round: then the runs' time is past the budget
    assert "reached time_budget_h=1e-06" in result.stdout + result.stderr


def stop(rounds, sweep, seed: int):
    """Why the sweeper would start no round `seed` on what `sweep` holds, as it decides it before each round."""
    return rounds.reason_to_stop(sweep, seed, rounds.current_report(sweep, seed))


def test_seeds_auto_stops_once_every_claim_is_decided(tmp_path):
    from helpers.sweeps import ABLATIONS, ablation_sweep

    from hydra_plugins.alexlab_seed_rounds.seed_rounds import SeedRoundsSweeper

    rounds = SeedRoundsSweeper(seeds="auto", min_seeds=3, max_seeds=10)
    noisy = ablation_sweep(tmp_path / "noisy")  # 5 seeds; depth 5->4 is undecided
    assert stop(rounds, noisy, seed=2) is None  # fewer than min_seeds rounds: not decided yet
    assert stop(rounds, noisy, seed=5) is None  # depth is undecided: one more round
    depth = ({"depth": "4"}, [2.0, 2.1, 1.9, 2.2, 2.0], 0.0, 1.0, ABLATIONS["depth_4"][4])
    decided = ablation_sweep(tmp_path / "decided", depth_4=depth)
    assert stop(rounds, decided, seed=5).startswith("every claim is decided (")


def test_an_arm_gets_no_more_seeds_once_every_claim_it_serves_is_decided(tmp_path):
    """After 5 seeds only depth 5->4 is open: its arm and the baseline (which every claim needs) get the next seed,
    the arms whose claims are decided do not. Before min_seeds rounds every arm runs."""
    from helpers.sweeps import ablation_sweep

    from alexlab.report import build_report
    from hydra_plugins.alexlab_seed_rounds.seed_rounds import SeedRoundsSweeper, spans

    sweep = ablation_sweep(tmp_path / "sweep")
    report = build_report(sweep)
    grid = [[o for o in row.runs[0].overrides if not o.startswith("seed=")] for row in report.rows]
    rounds = SeedRoundsSweeper(seeds="auto", min_seeds=3, max_seeds=10)
    kept = [report.rows[i].switches["ablation"] for i in rounds.arms_to_run(grid, report, seed=5)]
    assert kept == ["baseline", "depth_4"]
    assert rounds.arms_to_run(grid, report, seed=2) == list(range(len(grid)))  # sign verdicts wait for min_seeds
    assert spans([0, 4]) == [(0, 0), (4, 4)] and spans([0, 1, 2, 5, 7, 8]) == [(0, 2), (5, 5), (7, 8)]


def test_seeds_auto_budget_counts_each_run_once_and_a_report_it_cannot_build_stops_nothing(tmp_path, caplog):
    """The time budget sums the runs' own wall times, failed runs too, but a copy of a run (the same overrides,
    seed and start time, in a second folder) is not time spent again. A sweep dir the report refuses gives no
    decision: the rounds go on, with a warning, rather than the sweep stopping on an error."""
    import json
    import shutil

    from helpers.sweeps import write_run

    from hydra_plugins.alexlab_seed_rounds.seed_rounds import SeedRoundsSweeper

    sweep = tmp_path / "sweep"
    for job, status in enumerate(("finished", "failed")):
        path = write_run(sweep, job, seed=0, status=status, ablation="baseline") / "metrics.json"
        record = json.loads(path.read_text()) | {"wall_time_s": 1800.0, "started": 1.7e9 + job}
        path.write_text(json.dumps(record))
    rounds = SeedRoundsSweeper(seeds="auto", min_seeds=3, max_seeds=10, time_budget_h=1.5)
    assert stop(rounds, sweep, seed=1) is None  # 1 h of 1.5
    shutil.copytree(sweep / "0", sweep / "copies" / "0")  # the same run again: still 1 h
    assert stop(rounds, sweep, seed=1) is None
    write_run(sweep, 2, seed=1, ablation="baseline")
    record = json.loads((sweep / "2" / "metrics.json").read_text()) | {"wall_time_s": 1800.0, "started": 1.8e9}
    (sweep / "2" / "metrics.json").write_text(json.dumps(record))
    assert "1.50 h, reached time_budget_h=1.5" in stop(rounds, sweep, seed=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "multirun.yaml").write_text("hydra: {}\n")  # no runs yet: the report refuses
    with caplog.at_level("WARNING", logger="alexlab"):
        assert stop(rounds, empty, seed=3) is None
    assert "no decision after 3 seeds (BadValue" in caplog.text


@pytest.mark.parametrize(
    "bad, message",
    [
        ("seeds=0", "seeds=0: give a number of seeds (>= 1) or seeds=auto"),
        ("max_seeds=0", "max_seeds=0: must be a whole number >= 1"),
        ("time_budget_h=-1", "time_budget_h=-1.0: a number of hours > 0"),
        ("hydra.sweeper.margin=-1", "hydra.sweeper.margin must be a finite number of points >= 0, got -1.0"),
        ("hydra.sweeper.threshold=100", "hydra.sweeper.threshold is a training error in percent"),
        ("hydra.sweeper.ratio_margin=0.5", "hydra.sweeper.ratio_margin must be a finite ratio >= 1, got 0.5"),
        ("hydra.sweeper.claims=[lrn.steps]", "hydra.sweeper.claims: no claim is named 'lrn.steps'; the names: "),
        ("hydra.sweeper.claims=[]", "hydra.sweeper.claims=[]: give a list of claim names"),
        ("hydra.sweeper.first_seed=-1", "first_seed=-1: must be a whole number >= 0"),
        ("hydra.sweeper.first_seed=4294967290", "first_seed=4294967290: its 10 rounds' seeds must stay <= 4294967295"),
        ("hydra.sweeper.claims=5", "hydra.sweeper.claims=5: give a list of claim names"),
    ],
)
def test_a_seed_rounds_sweep_refuses_bad_settings_in_one_line_before_any_run(tmp_path, bad, message):
    sweep_dir = tmp_path / "refused"
    result = run_alexlab("sweep", "paper_ablations", "seeds=auto", bad, *TWO_ABLATIONS, f"hydra.sweep.dir={sweep_dir}",
                         cwd=tmp_path)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"alexlab: error: {message}"), lines
    assert not sweep_dir.exists()  # nothing ran, nothing was written


def test_seeds_auto_stops_on_claims_more_seeds_cannot_decide_and_on_its_budget_without_a_report(tmp_path, caplog):
    """A speed claim whose runs are censored at the threshold stays undecided whatever more seeds show: it does not
    keep the rounds going. The time budget is read from the runs, so it holds where the report cannot be built."""
    import json

    from helpers.sweeps import seed_rounds_yaml
    from test_report import relu_against_tanh

    from hydra_plugins.alexlab_seed_rounds.seed_rounds import SeedRoundsSweeper

    # tanh never gets below 89%, ReLU is below 25% at its first point: no end of the interval can hold
    sweep = relu_against_tanh(tmp_path / "censored", [(10, 0.2), (20, 0.1), (30, 0.05)],
                              [(10, 0.9), (20, 0.895), (300, 0.892)])  # fmt: skip
    seed_rounds_yaml(sweep, threshold=25.0)
    rounds = SeedRoundsSweeper(seeds="auto", min_seeds=3, max_seeds=10, time_budget_h=1.0)
    reason = stop(rounds, sweep, seed=3)
    assert reason.startswith("every claim more seeds could decide is decided") and "6 runs censored" in reason
    for job in range(6):  # 6 runs of 15 minutes: past the budget; and a bad margin saved: no report
        path = sweep / str(job) / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"wall_time_s": 900.0, "started": 1.7e9 + job}))
    seed_rounds_yaml(sweep, margin=-1.0)
    assert stop(rounds, sweep, seed=3) == "the runs' training time, 1.50 h, reached time_budget_h=1"
    with caplog.at_level("WARNING", logger="alexlab"):
        assert stop(SeedRoundsSweeper(seeds="auto"), sweep, seed=3) is None  # no budget: no decision
    assert "hydra.sweeper.margin must be a finite number" in caplog.text


def test_a_follow_up_runs_fresh_seeds_and_reads_only_the_claims_it_names(alexlab, tmp_path):
    """sweeps/follow_up.yaml: seeds from first_seed (100) on, so its runs repeat none of paper_ablations' (seeds
    0 ..); its report reads the two claims it names and shows the others of its rows as not its own."""
    sweep_dir = tmp_path / "follow_up"
    alexlab("sweep", "follow_up", *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "seeds=2",
            f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    runs = {p.name: read_metrics(p) for p in job_dirs(sweep_dir)}
    assert {name: (m["seed"], m["switches"]["ablation"]) for name, m in runs.items()} == {
        "0": (100, "baseline"), "1": (100, "dropout_off"), "2": (101, "baseline"), "3": (101, "dropout_off"),
    }  # fmt: skip
    with (sweep_dir / "verdicts.csv").open() as f:
        verdicts = {(row["change"].split(" ")[0], row["measure"]): row["verdict"] for row in csv.DictReader(f)}
    mine = {key for key, verdict in verdicts.items() if verdict != "not this sweep's claim"}
    assert {(change, "test_centre/top1_err" in measure or "ten_crop" in measure) for change, measure in mine} == {
        ("test_views", True), ("dropout", True)}, verdicts  # fmt: skip
    assert len(verdicts) == 4  # dropout's gap and steps are in the table, not read
    again = alexlab("sweep", "follow_up", *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "seeds=2",
                    f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert (again.stdout + again.stderr).count("already finished") == 4  # resumed where it left: seeds 100 and 101
    before = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    moved = alexlab("sweep", "follow_up", *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "seeds=2",
                    "hydra.sweeper.first_seed=0", f"hydra.sweep.dir={sweep_dir}", expect_ok=False)  # fmt: skip
    lines = moved.stderr.strip().splitlines()
    assert moved.returncode == 2 and len(lines) == 1, lines  # each job's seed is its own: a moved first_seed is refused
    assert re.search(r"/0 holds the job .*seed=100.*, but this command would run .*seed=0\b", lines[0]), lines
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", ["relu_speed", "dropout_speed"])
def test_the_speed_sweeps_start_with_their_list_of_thresholds(alexlab, tmp_path, name):
    """hydra.sweeper.threshold: [25, 10] reaches the sweeper as OmegaConf's ListConfig, which the threshold check
    refused ("a threshold is a training error in percent, got [25, 10]"): both speed sweeps ended before their first
    run. Each now runs a round (on the smoke setting: the sweep is under test, not Figure 1) and writes its report."""
    sweep_dir = tmp_path / name
    alexlab("sweep", name, *SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "seeds=1", f"hydra.sweep.dir={sweep_dir}")
    assert (sweep_dir / "report.md").exists() and len(run_dirs(sweep_dir)) == 2
