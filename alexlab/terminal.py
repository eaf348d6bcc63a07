"""What a run shows in the terminal: one unit (percent) for every error and accuracy, progress with or without a
TTY, and the headline at the end.

- On a TTY, Lightning's Rich progress bar, its metrics in percent (`PercentProgressBar`); the log's lines go through
  `TerminalHandler`, which writes to the sys.stdout of the moment: while the bar is live, that is Rich's redirect,
  which prints each line above the bar instead of on it.
- Without a TTY (nohup, CI, a pipe), where a bar would print nothing readable, `ProgressLines` logs a line every
  `every_s` seconds of training: the epoch, the step within it, images/s and the time left (epoch and run).
- At the end, `headline` says what the run measured: test top-1/top-5 error and accuracy, the best validation
  error and its epoch, the wall time and the run directory.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from typing import TYPE_CHECKING

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from alexlab import metrics

if TYPE_CHECKING:
    from alexlab.record import Record

log = logging.getLogger("alexlab")


def percent(value: float) -> str:
    """A fraction (an error, an accuracy) as the terminal shows every one: 8.47%."""
    return "nan" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def is_fraction(key: str) -> bool:
    """Metrics that are fractions of the images: errors and accuracies."""
    return key.endswith(("_err", "_acc", "accuracy"))


def duration(seconds: float) -> str:
    """12 s, 4 min 13 s, 2 h 05 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TerminalHandler(logging.StreamHandler):
    """A StreamHandler that writes to sys.stdout (or sys.stderr) as it is at each line, not as it was when logging
    was set up: Rich's live progress bar redirects them, so the lines land above the bar. Takes Hydra's `stream`
    argument (ext://sys.stdout or ext://sys.stderr) only to know which of the two."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream)
        self._to_stderr = stream is sys.__stderr__ or stream is sys.stderr

    @property
    def stream(self):
        return sys.stderr if self._to_stderr else sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ and setStream assign it
        pass


class PercentProgressBar(RichProgressBar):
    """Lightning's Rich bar with errors and accuracies in percent, as the epoch lines and the headline show them."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        return {k: percent(v) if is_fraction(k) and isinstance(v, float) else v for k, v in metrics.items()}


class ProgressLines(L.Callback):
    """Without a TTY: a line every `every_s` seconds while training, with images/s and what is left."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._fit_start = self._epoch_start = self._last = 0.0
        self._images = self._batches = 0
        self._first_step = 0

    def _start_epoch_clock(self) -> None:
        self._epoch_start = self._last = time.perf_counter()
        self._images = self._batches = 0

    def on_train_start(self, trainer, pl_module) -> None:
        # a resumed run counts from where it went on; one resumed in the middle of an epoch gets no
        # on_train_epoch_start for it (Lightning skips the hook), so its epoch's clock starts here too
        self._start_epoch_clock()
        self._fit_start = self._epoch_start
        self._first_step = trainer.global_step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start_epoch_clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1])
        self._batches += 1  # since the epoch's start, or since the resume within it
        now = time.perf_counter()
        if now - self._last < self.every_s or not trainer.is_global_zero:
            return
        self._last = now
        batches = trainer.num_training_batches
        done = batch_idx + 1
        took = now - self._epoch_start
        rate = self._images * trainer.world_size / took
        epoch_left = took / self._batches * (batches - done) if math.isfinite(batches) else math.nan
        steps_done = trainer.global_step - self._first_step
        steps_left = (trainer.estimated_stepping_batches or 0) - trainer.global_step
        run_left = (now - self._fit_start) / steps_done * steps_left if steps_done and steps_left >= 0 else math.nan
        where = f"{done}/{batches}" if math.isfinite(batches) else str(done)
        left = [f"epoch {duration(epoch_left)}" if math.isfinite(epoch_left) else ""]
        left.append(f"run {duration(run_left)}" if math.isfinite(run_left) else "")
        log.info(
            "epoch %d  step %s  %.0f images/s  left: %s",
            trainer.current_epoch,
            where,
            rate,
            ", ".join(text for text in left if text) or "?",
        )


def headline(ended: Record, run_dir) -> list[str]:
    """The lines that end a run: what it measured, in percent, how long it took, where it is."""
    final, best = ended.final, ended.best
    lines = []
    if metrics.TEST_TOP1 in final:
        top1, top5 = final[metrics.TEST_TOP1], final.get(metrics.TEST_TOP5)
        test = f"test top-1 error {percent(top1)} (accuracy {percent(1 - top1)})"
        if top5 is not None:
            test += f", top-5 error {percent(top5)}"
        lines.append(test)
    objective = ended.objective or metrics.VAL_TOP1
    if objective in best:
        shown = percent(best[objective]) if is_fraction(objective) else f"{best[objective]:.4g}"
        lines.append(f"best {objective} {shown} at epoch {best.get('epoch', '?')}")
    took = f"{ended.status.value} in {duration(ended.wall_time_s or 0)}"
    return [f"{took}: {'; '.join(lines)}" if lines else took, f"run dir: {run_dir}"]


# Lightning's lines that tell an alexlab user nothing, left out of the terminal and alexlab.log: its cloud logger's
# advert, accelerators this machine does not have, the count of batches it loads to size a per-step schedule, a
# limit the user set (`Trainer(limit_val_batches=4)` was configured...), and why fit stopped (alexlab's headline
# says how the run ended). What helps stays: a GPU that is there, used or not, restoring from a checkpoint, DDP.
LIGHTNING_CHATTER = re.compile(
    r"💡 Tip|GPU available: False, used: False|TPU available: False|HPU available: False"
    r"|Loading `train_dataloader` to estimate number of stepping batches"
    r"|`Trainer\(limit_\w+_batches=[^)]*\)` was configured|`Trainer.fit` stopped: "
)


def quiet_lightning() -> None:
    """Lightning's lines once, and only those that tell an alexlab user something: `import lightning` gives its logger
    a stderr handler of its own, and Hydra's root handlers already print its lines (and write them to the run's
    alexlab.log), so without this every Lightning message shows twice; LIGHTNING_CHATTER is left out."""
    logging.getLogger("lightning").handlers.clear()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(getattr(f, "__name__", "") == "not_chatter" for f in logger.filters):
            logger.addFilter(not_chatter)


def not_chatter(record: logging.LogRecord) -> bool:
    return not LIGHTNING_CHATTER.match(record.getMessage())
