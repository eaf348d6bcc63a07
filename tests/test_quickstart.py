"""The README's quickstart, end to end: the small AlexNet on real Fashion-MNIST reaches at least 90% test accuracy."""

import pytest
from conftest import FASHION_MNIST, read_metrics, run_dirs


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_quickstart_reaches_90_percent_on_fashion_mnist(alexlab, tmp_path):
    alexlab("experiment=quickstart", timeout=1200)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    print(f"quickstart: test top-1 error {metrics['final']['test/top1_err']:.4f}, {metrics['wall_time_s']} s")
    assert metrics["status"] == "finished" and metrics["switches"]["data"] == "fashion_mnist"
    assert metrics["final"]["test/top1_err"] <= 0.10
    assert metrics["history"][-1]["train/loss"] < metrics["history"][0]["train/loss"]
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
