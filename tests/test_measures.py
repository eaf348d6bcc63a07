"""What every run measures for the report's verdicts (alexlab.metrics), through the real command: the test split in
both views, its LRN's strength, and at the paper's input scale an LRN that does more than divide by a constant."""

import pytest
import torch
from helpers.commands import read_metrics as metrics
from helpers.commands import run_dirs

from alexlab.model.layers import lrn_strength
from alexlab.report.claims import LRN_FLOOR

SMOKE = ("experiment=smoke", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=4")


@pytest.mark.parametrize("views", ["centre", "ten_crop"])
def test_every_run_tests_both_views_and_reports_the_one_test_views_names(alexlab, tmp_path, views):
    alexlab(*SMOKE, f"test_views={views}")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    final = metrics(run_dir)["final"]
    for split in ("test", "test_centre", "test_ten_crop"):
        assert 0 <= final[f"{split}/top1_err"] <= 1 and f"{split}/loss" in final
    assert final["test/top1_err"] == final[f"test_{views}/top1_err"]
    assert final["test/loss"] == final[f"test_{views}/loss"]


def test_the_lrns_strength_is_logged_and_at_the_papers_raw_scale_it_acts(alexlab, tmp_path):
    """At unit-spread inputs the LRN's alpha * sum of squares / k stays near 1e-3 (a constant divisor); on the paper's
    centered raw pixel values (data.scale=raw) it is orders of magnitude larger, above the report's floor."""
    strengths = {}
    for scale in ("unit", "raw"):
        alexlab(*SMOKE, f"data.scale={scale}")
        (run_dir,) = [d for d in run_dirs(tmp_path / "outputs") if f"data.scale={scale}" in metrics(d)["overrides"]]
        record = metrics(run_dir)
        strengths[scale] = record["final"]["lrn/conv1_strength"]
        assert record["history"][-1]["lrn/conv2_strength"] > 0 and record["macs"] > 0
    assert strengths["unit"] < LRN_FLOOR < strengths["raw"]
    assert strengths["raw"] > 100 * strengths["unit"]


def test_lrn_strength_is_the_mean_of_alpha_times_the_window_sum_of_squares_over_k():
    x = torch.randn(2, 8, 3, 3) * 7
    size, alpha, k = 5, 5e-4, 2.0
    squares = torch.nn.functional.pad(x**2, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window = sum(squares[:, i : i + 8] for i in range(size))
    assert lrn_strength(x, size, alpha, k).item() == pytest.approx((alpha / size * window / k).mean().item(), rel=1e-5)
    towers = lrn_strength(x, size, alpha, k, towers=2)  # a window never crosses into the other tower
    halves = [lrn_strength(part, size, alpha, k) for part in x.split(4, dim=1)]
    assert towers.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-5)


def test_the_clean_training_error_is_measured_every_few_steps_and_can_end_a_run(alexlab, tmp_path):
    """train_clean_every: the network in eval mode on a fixed sample of training images at step 0 and every 2 steps
    (the speed claims' measure); it leaves the training itself alone: the same weights, step for step, as without it.
    train_clean_stop ends the run once the clean error is that low."""
    run = (*SMOKE, "trainer.limit_train_batches=6", "deterministic=true")
    alexlab(*run, "train_clean_every=2", "train_clean_size=32")
    alexlab(*run)
    with_clean, without = sorted(run_dirs(tmp_path / "outputs"), key=lambda d: "train_clean" not in str(
        metrics(d)["overrides"]))  # fmt: skip
    clean = metrics(with_clean)["clean_curve"]
    assert [row["step"] for row in clean] == [0, 2, 4, 6]
    assert all(0 <= row["train_clean/top1_err"] <= 1 and row["train_clean/loss"] > 0 for row in clean)
    same = lambda d: [(row["train/loss"], row["val/top1_err"]) for row in metrics(d)["history"]]
    assert same(with_clean) == same(without)  # measuring it trains nothing differently
    assert metrics(without)["clean_curve"] == []
    alexlab(*run, "train_clean_every=1", "train_clean_size=32", "train_clean_stop=0.999")  # at once: below 99.9%
    (stopped,) = [d for d in run_dirs(tmp_path / "outputs") if "train_clean_stop=0.999" in metrics(d)["overrides"]]
    assert [row["step"] for row in metrics(stopped)["clean_curve"]] == [0]  # already there: not a step trained
    assert metrics(stopped)["status"] == "finished"


def test_a_class_balanced_subset_is_the_same_for_every_seed_and_arm():
    from alexlab.data import ImageDataModule
    from alexlab.data.synthetic import SyntheticShapes

    def subset(seed, **overrides):
        source = SyntheticShapes(image_size=32, channels=3, train_size=400, test_size=40)
        module = ImageDataModule(source, num_classes=10, channels=3, mean=[0.5] * 3, std=[0.25] * 3, batch_size=8,
                                 num_workers=0, val_size=100, crop_size=28, seed=seed, **overrides)  # fmt: skip
        module.setup("fit")
        fit = module.train_set.dataset
        return sorted(fit.indices), [int(fit.dataset[i][1]) for i in fit.indices], module

    first, labels, module = subset(0, train_per_class=5, split_seed=0)
    assert len(first) == 50 and sorted(labels) == sorted(list(range(10)) * 5)  # 5 of each class
    assert subset(1, train_per_class=5, split_seed=0)[0] == first  # another seed: the same images
    assert not set(first) & set(module.val_set.dataset.indices)  # none of them in validation
    assert subset(1, train_per_class=5)[0] != first  # without split_seed the split follows the run's seed
    with pytest.raises(ValueError, match="train_per_class=100: class 0 has only"):
        subset(0, train_per_class=100, split_seed=0)
