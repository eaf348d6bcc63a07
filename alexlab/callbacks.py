"""alexlab's own Lightning callback: the per-epoch history that metrics.json keeps, one log line per epoch."""

from __future__ import annotations

import logging
import math

import lightning as L

log = logging.getLogger("alexlab")


class EpochHistory(L.Callback):
    """Keeps every epoch's metrics (train, val, lr, images/s) and logs them as one plain line.

    The line goes through Python logging, so it lands in the terminal and in the run directory's alexlab.log
    (Hydra's file handler) whether or not a progress bar is shown.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(("train/", "val/", "perf/")):
                row[key] = float(value)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.history.append(row)
        log.info("epoch %d  %s", row["epoch"], "  ".join(_fmt(k, v) for k, v in row.items() if "/" in k or k == "lr"))


def _fmt(key: str, value: float) -> str:
    if math.isnan(value):
        return f"{key}=nan"
    if key.endswith("_err"):
        return f"{key}={100 * value:.2f}%"
    if key == "lr":
        return f"lr={value:.3g}"
    return f"{key}={value:.4g}"
