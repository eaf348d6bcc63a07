"""What a run logs to W&B, read back from the offline run files (no account, no server)."""

from helpers.commands import read_metrics

from alexlab.report import build_report
from alexlab.wandb_runs import find_runs

SWITCH_KEYS = ("depth", "dropout", "lrn", "pooling", "activation", "augment", "split", "data", "seed")


def test_a_2x2_multirun_gives_4_self_describing_runs_in_one_group(smoke_grid):
    sweep_dir = smoke_grid  # alexlab -m experiment=smoke dropout=on,off depth=5,3 (conftest.py)
    runs = find_runs(sweep_dir)
    assert len(runs) == 4 and len({run.id for run in runs}) == 4
    assert {run.group for run in runs} == {"grid"}  # the sweep directory's name
    assert {run.job_type for run in runs} == {"train"}
    assert {(run.config["dropout"], run.config["depth"]) for run in runs} == {
        ("on", "5"),
        ("on", "3"),
        ("off", "5"),
        ("off", "3"),
    }
    for run in runs:
        job_dir = run.path.parents[2]
        metrics = read_metrics(job_dir)
        assert all(key in run.config for key in SWITCH_KEYS)
        assert run.config["seed"] == 0 and run.config["data"] == "synthetic"
        assert run.config["git_commit"] == metrics["git"]["commit"]
        assert run.config["config"]["model"]["depth"] == int(run.config["depth"])  # the whole composed config
        assert f"dropout={run.config['dropout']}" in run.tags and f"depth={run.config['depth']}" in run.tags
        assert f"dropout={run.config['dropout']}" in run.name and run.name.endswith("seed=0")
        assert run.state == "finished" and run.exit_code == 0 and run.summary["status"] == "finished"
        validations = [row for row in run.history if "val/top1_err" in row]
        assert [row["epoch"] for row in validations] == [0, 1]  # one row per epoch, the epoch as the step
        assert run.summary["val/top1_err"] == {"min": min(row["val/top1_err"] for row in validations)}
        assert run.summary["test/top1_err"] == metrics["final"]["test/top1_err"]

    # the report reads the same numbers from the W&B files as from the run directories
    from_runs, from_wandb = build_report(sweep_dir), build_report(sweep_dir, source="wandb")
    assert [row.label for row in from_runs.rows] == [row.label for row in from_wandb.rows]
    for a, b in zip(from_runs.rows, from_wandb.rows, strict=True):
        assert {m: s.values for m, s in a.summaries.items()} == {m: s.values for m, s in b.summaries.items()}
        assert a.runs[0].curve == b.runs[0].curve


def test_training_goes_on_with_the_csv_logger_when_wandb_cannot_start(alexlab, tmp_path):
    unreachable = {
        "WANDB_MODE": "online",
        "WANDB_API_KEY": "0" * 40,
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens there
        "WANDB_INIT_TIMEOUT": "2",
    }
    result = alexlab("experiment=smoke", "logger=wandb", "hydra.run.dir=" + str(tmp_path / "run"), env=unreachable)
    out = result.stdout + result.stderr
    assert out.count("W&B could not start") == 1
    assert "training goes on with the other loggers" in out
    run_dir = tmp_path / "run"
    assert read_metrics(run_dir)["status"] == "finished"
    lines = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    assert "val/top1_err" in lines[0] and len(lines) > 2
    assert not any(row for run in find_runs(run_dir) for row in run.history)  # nothing was logged to W&B
