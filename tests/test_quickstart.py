"""The README's quickstart, end to end on real Fashion-MNIST: a third of its first epoch in the default run (about
20 s: it learns, to better than 65% test accuracy), and the whole quickstart reaching at least 90% as a slow test
(about 7 min on 2 cores: `python3 -m pytest -m slow`)."""

import pytest
from helpers.commands import FASHION_MNIST, read_metrics, run_dirs

pytestmark = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")


def quickstart(alexlab, tmp_path, *overrides: str) -> dict:
    alexlab("experiment=quickstart", *overrides, timeout=1200)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    print(f"quickstart: test top-1 error {metrics['final']['test/top1_err']:.4f}, {metrics['wall_time_s']} s")
    assert metrics["status"] == "finished" and metrics["switches"]["data"] == "fashion_mnist"
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    return metrics


def test_a_third_of_the_quickstarts_first_epoch_learns(alexlab, tmp_path):
    # a tenth of the test split, 1,000 images in both views (measured: 26% test error, +-1.4% at that size)
    limits = ["trainer.limit_train_batches=0.33", "trainer.limit_val_batches=0.5", "trainer.limit_test_batches=0.1"]
    metrics = quickstart(alexlab, tmp_path, "trainer.max_epochs=1", *limits)
    assert len(metrics["history"]) == 1
    assert metrics["final"]["val/top1_err"] <= 0.35 and metrics["final"]["test/top1_err"] <= 0.35  # chance: 0.9


@pytest.mark.slow
def test_quickstart_reaches_90_percent_on_fashion_mnist(alexlab, tmp_path):
    metrics = quickstart(alexlab, tmp_path)
    assert len(metrics["history"]) == 8
    assert metrics["final"]["test/top1_err"] <= 0.10
    assert metrics["history"][-1]["train/loss"] < metrics["history"][0]["train/loss"]
