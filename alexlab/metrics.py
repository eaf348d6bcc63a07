"""The names of what a run measures: one set of names for the metrics logged to W&B and the other loggers, the run
record, the report and the sweep's objective. A metric is `<split>/<quantity>`; the errors are
fractions (0.0816, not 8.16%).

Splits:
- train: the training batches as trained (dropout on, augmented), averaged over each epoch;
- val: the held-out validation images, centre view, evaluated after each epoch;
- train_eval: a fixed sample of training images evaluated as the validation images are (eval mode, centre view),
  the training error without dropout and augmentation that the validation error is set against for overfitting;
- test: the test split after training, in the view `test_views` chooses (the run's headline);
- test_centre and test_ten_crop: the same test images in both views, every run: the centre crop, and the softmax
  averaged over the paper's ten crops (four corners and the centre, and their mirror images), so that the ten-crop
  claim is read within each run and every other claim on the view every network was trained to see.
"""

from __future__ import annotations

TRAIN, VAL, TRAIN_EVAL, TEST = "train", "val", "train_eval", "test"
TEST_CENTRE, TEST_TEN_CROP = "test_centre", "test_ten_crop"
# The clean training error: a fixed sample of training images in eval mode, every few steps (the training curve's
# rows; the speed claims' measure, as the paper's Figure 1 reads it)
TRAIN_CLEAN = "train_clean"
SPLITS = (TRAIN, VAL, TRAIN_EVAL, TEST, TEST_CENTRE, TEST_TEN_CROP)
QUANTITIES = ("loss", "top1_err", "top5_err")
# The prefixes of the metrics an epoch's row of the history keeps (callbacks.EpochHistory)
EPOCH_PREFIXES = ("train/", "val/", "train_eval/", "perf/", "lrn/")
IMAGES_PER_SEC = "perf/images_per_sec"
LR = "lr"


def metric(split: str, quantity: str) -> str:
    """`val/top1_err`."""
    return f"{split}/{quantity}"


def lrn_strength(layer: str) -> str:
    """How strongly the LRN after `layer` (conv1, conv2) normalises: the mean over validation images of
    alpha * (sum of squares over its window) / k, logged after each validation (callbacks.LRNStrength). Near 0 the
    LRN divides by the constant k^beta, whatever its input."""
    return f"lrn/{layer}_strength"


def curve(name: str) -> str:
    """The name a training-curve metric is logged under to the step-based loggers: train/top1_err as
    curve/train_top1_err (callbacks.log_curve)."""
    return "curve/" + name.replace("/", "_")


TRAIN_TOP1, TRAIN_LOSS = metric(TRAIN, "top1_err"), metric(TRAIN, "loss")
VAL_TOP1, VAL_TOP5 = metric(VAL, "top1_err"), metric(VAL, "top5_err")
TEST_TOP1, TEST_TOP5 = metric(TEST, "top1_err"), metric(TEST, "top5_err")
CENTRE_TOP1, TEN_CROP_TOP1 = metric(TEST_CENTRE, "top1_err"), metric(TEST_TEN_CROP, "top1_err")
CLEAN_TOP1, CLEAN_LOSS = metric(TRAIN_CLEAN, "top1_err"), metric(TRAIN_CLEAN, "loss")
