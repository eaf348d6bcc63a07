"""A sweep never trains the same network twice (alexlab.twins): a job that differs from a finished one only in how it
tests, tests that job's checkpoint; any other difference, a missing checkpoint or reuse_training=false: it trains."""

import csv
import json
import shutil

import pytest
from helpers.commands import FEW_BATCHES, read_metrics, run_alexlab
from hydra import compose, initialize_config_module

from alexlab.report import read_run, read_wandb_run
from alexlab.twins import training_config


def without_tests(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("test/")}


def test_a_job_that_differs_only_in_its_test_views_tests_the_first_jobs_checkpoint(alexlab, tmp_path):
    sweep_dir = tmp_path / "views"
    result = alexlab("-m", "experiment=smoke", "test_views=centre,ten_crop", f"hydra.sweep.dir={sweep_dir}")
    trained, tested = read_metrics(sweep_dir / "0"), read_metrics(sweep_dir / "1")
    assert trained["switches"]["test_views"] == "centre" and tested["switches"]["test_views"] == "ten_crop"
    assert trained["trained_in"] is None and tested["trained_in"] == str(sweep_dir / "0")
    assert "trained in" in result.stdout + result.stderr
    # its training is the first job's: epochs, curve, best epoch, and the checkpoint it tested; none of its own
    assert len(trained["history"]) == 2 and tested["history"] == trained["history"]
    assert tested["curve"] == trained["curve"] and tested["best"] == trained["best"]
    assert without_tests(tested["final"]) == without_tests(trained["final"])
    assert tested["checkpoints"]["best"] == trained["checkpoints"]["best"]
    assert tested["checkpoints"]["best"].startswith(str(sweep_dir / "0" / "checkpoints"))
    assert not (sweep_dir / "1" / "checkpoints").exists()
    assert tested["status"] == "finished" and tested["wall_time_s"] < trained["wall_time_s"]
    # and its test is that checkpoint's, 10-crop: what `alexlab test` of it gives
    check = alexlab("test", "experiment=smoke", "test_views=ten_crop", f"ckpt_path={trained['checkpoints']['best']}",
                    "logger=none")  # fmt: skip
    assert check.returncode == 0
    (standalone,) = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert read_metrics(standalone)["final"]["test/top1_err"] == pytest.approx(tested["final"]["test/top1_err"])
    # its loggers got the epochs too: the report from its W&B run gives what its metrics.json gives
    from_wandb, from_record = read_wandb_run(sweep_dir / "1", sweep_dir), read_run(sweep_dir / "1", sweep_dir)
    assert from_wandb.values == pytest.approx(from_record.values)
    # pytest.approx takes flat sequences only: the curves' (step, error) pairs compared value by value
    assert flat(from_wandb.curve) == pytest.approx(flat(from_record.curve))
    assert flat(from_wandb.train_curve) == pytest.approx(flat(from_record.train_curve)) and from_wandb.train_curve
    (metrics_csv,) = (sweep_dir / "1").rglob("metrics.csv")  # one row per epoch, the test in the last one's
    rows = list(csv.DictReader(metrics_csv.open()))
    assert [row["epoch"] for row in rows] == ["0", "1"] and rows[-1]["test/top1_err"] and not rows[0]["test/top1_err"]


def test_a_job_trains_without_a_checkpoint_to_test_or_with_reuse_training_false(alexlab, tmp_path):
    sweep_dir = tmp_path / "views"
    args = ("-m", "experiment=smoke", "logger=none", "trainer.max_epochs=1", *FEW_BATCHES, "test_views=centre,ten_crop")
    alexlab(*args, "reuse_training=false", f"hydra.sweep.dir={sweep_dir}")
    assert [read_metrics(sweep_dir / job)["trained_in"] for job in ("0", "1")] == [None, None]
    assert (sweep_dir / "1" / "checkpoints").is_dir()

    # an interrupted sweep whose finished job's checkpoints are gone (another machine): its twin trains
    again = tmp_path / "again"
    alexlab(*args, f"hydra.sweep.dir={again}")
    assert read_metrics(again / "1")["trained_in"] == str(again / "0")
    record = read_metrics(again / "1")
    (again / "1" / "metrics.json").write_text(json.dumps({**record, "status": "running"}))
    shutil.rmtree(again / "0" / "checkpoints")
    first = read_metrics(again / "0")
    result = run_alexlab(*args, f"hydra.sweep.dir={again}", f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_metrics(again / "0") == first  # finished: not run again
    retrained = read_metrics(again / "1")
    assert retrained["status"] == "finished" and retrained["trained_in"] is None
    assert (again / "1" / "checkpoints").is_dir() and len(retrained["history"]) == 1


def compose_training(overrides: list[str]) -> dict:
    with initialize_config_module("alexlab.conf", version_base="1.3"):
        return training_config(compose("config", overrides=overrides))


def test_the_training_config_leaves_out_only_what_does_not_change_the_weights():
    base = compose_training(["experiment=smoke"])
    for same in ("test_views=ten_crop", "logger=none", "paths.output_root=/elsewhere", "progress_every_s=5",
                 "test_after_fit=false", "resume=true", "reuse_training=false"):  # fmt: skip
        assert compose_training(["experiment=smoke", same]) == base, same
    for different in ("dropout=off", "seed=1", "data.batch_size=64", "trainer.max_epochs=3", "augment=none",
                      "optimizer.lr=0.1", "callbacks.checkpoint.monitor=val/loss", "deterministic=true"):  # fmt: skip
        assert compose_training(["experiment=smoke", different]) != base, different


def flat(pairs: list[tuple]) -> list[float]:
    return [value for pair in pairs for value in pair]
