"""alexlab's own Lightning callbacks: the per-epoch history and the training curve that the run record keeps, one log
line per epoch, stopping a diverged run, checkpointing on SIGTERM, and reporting to an Optuna trial."""

from __future__ import annotations

import io
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from alexlab import metrics
from alexlab.errors import BadValue, Diverged
from alexlab.metrics import EPOCH_PREFIXES
from alexlab.terminal import is_fraction, percent

log = logging.getLogger("alexlab")


class EpochHistory(L.Callback):
    """Measures training images/s, keeps every epoch's metrics (train, val, lr, images/s), logs them as one line.

    Images/s counts the training batches only (from the epoch's start to its last batch, validation excluded).
    The lr is the one the epoch started at, of the first parameter group (every group follows one schedule from one
    base lr: module.parameter_groups); it goes to the loggers as `lr` at the epoch's end, so that the run record, W&B,
    TensorBoard and the CSV log all name it `lr` (Lightning's LearningRateMonitor names one per parameter group,
    lr/pg1 and lr/pg2 with the biases in a group of their own).
    The line goes through Python logging, so it lands in the terminal and in the run directory's alexlab.log
    (Hydra's file handler) whether or not a progress bar is shown.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._start = self._last = 0.0
        self._images = 0
        self._epoch_lr: tuple[int | None, float] = (None, math.nan)

    def state_dict(self) -> dict:
        # in every checkpoint: a resumed run keeps the epochs before it, and the lr its unfinished epoch started at
        return {"history": self.history, "epoch_lr": self._epoch_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict["history"])
        self._epoch_lr = tuple(state_dict.get("epoch_lr") or (None, math.nan))

    def _start_clock(self) -> None:
        self._start = self._last = time.perf_counter()
        self._images = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a run resumed in the middle of an epoch gets no on_train_epoch_start for it (Lightning's fit loop skips the
        # hook when it restarts mid-epoch): its rate counts from here, the images it trains from here
        self._start_clock()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_clock()
        # the lr this epoch started at: a per-step schedule has moved on by the epoch's end, to 0 after the last step
        # of a cosine one. An epoch resumed in its middle keeps its own.
        if self._epoch_lr[0] != trainer.current_epoch:
            self._epoch_lr = (trainer.current_epoch, trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1])
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._images and self._last > self._start:
            # under DDP each rank logs world_size x its own rate and sync_dist averages them: the job's total rate
            rate = self._images * trainer.world_size / (self._last - self._start)
            pl_module.log(metrics.IMAGES_PER_SEC, rate, on_epoch=True, sync_dist=True)
        # to the loggers as LearningRateMonitor does, a Python float (self.log would make 0.01 a float32 0.0099999998),
        # with the epoch, so that W&B plots it against the epoch and the CSV log puts it in the epoch's row
        for logger in trainer.loggers:
            logger.log_metrics({"lr": self._epoch_lr[1], "epoch": trainer.current_epoch}, step=trainer.global_step)
        row: dict[str, float] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(EPOCH_PREFIXES):
                row[key] = float(value)
        row["lr"] = self._epoch_lr[1]
        self.history.append(row)
        if trainer.is_global_zero:
            shown = "  ".join(_fmt(k, v) for k, v in row.items() if "/" in k or k == "lr")
            log.info("epoch %d  %s", row["epoch"], shown)


class PhaseTimes(L.Callback):
    """Where a run's wall time goes, in seconds, for its record (`phases`) and `alexlab bench`'s study section:
    setup (from the job's start to the fit's: data, network, loggers, the Trainer), train (the fit's training steps,
    with Lightning's and alexlab's per-step work), validate (the validation and train_eval passes, sanity check
    included), clean (the clean training error's passes), checkpoint (writing checkpoints), test (testing, both
    views). `started`: the job's start (time.perf_counter)."""

    def __init__(self, started: float, clean: CleanTrainingError | None = None) -> None:
        self.started, self.clean = started, clean
        self.seconds: dict[str, float] = {}
        self._marks: dict[str, float] = {}
        self._checkpoint_start = AtomicCheckpointIO.seconds

    def phases(self) -> dict[str, float]:
        """The phases so far, rounded to milliseconds."""
        seconds = dict(self.seconds)
        if "fit" in seconds:
            fit = seconds.pop("fit")
            seconds["clean"] = self.clean.seconds if self.clean is not None else 0.0
            seconds["checkpoint"] = AtomicCheckpointIO.seconds - self._checkpoint_start
            parts = ("validate", "clean", "checkpoint")
            seconds["train"] = fit - sum(seconds.get(part, 0.0) for part in parts)
        return {name: round(value, 3) for name, value in seconds.items()}

    def _start(self, name: str) -> None:
        self._marks[name] = time.perf_counter()

    def _stop(self, name: str) -> None:
        if name in self._marks:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._marks.pop(name)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds["setup"] = self.seconds.get("setup", 0.0) + time.perf_counter() - self.started
        self._start("fit")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop("fit")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("validate")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop("validate")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop("test")


class LRNStrength(L.Callback):
    """After each validation, how strongly each LRN of the network normalised the validation images
    (alexlab.metrics.lrn_strength, alexlab.model.layers.lrn_strength), logged as lrn/<layer>_strength: the report
    reads the LRN claim only where the LRN does more than divide by a constant. Measured by a forward hook on each
    LRN while the validation split (not train_eval) runs; nothing for a network without LRN."""

    def __init__(self) -> None:
        self._sums: dict[str, list] = {}  # layer -> [sum of batch means weighted by images, images]
        self._measuring = False
        self._handles: list = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from alexlab.model.layers import TowerLRN

        for name, layer in pl_module.named_modules():
            if isinstance(layer, TowerLRN):
                layer_name = "conv" + name.rpartition("lrn")[2]  # features.lrn1 -> conv1
                self._handles.append(layer.register_forward_hook(self._hook(layer_name)))

    def _hook(self, layer_name: str):
        def hook(layer, inputs, output) -> None:
            if self._measuring:
                from alexlab.model.layers import lrn_strength

                (x,) = inputs
                value = lrn_strength(x, layer.size, layer.alpha, layer.k, layer.towers)
                total = self._sums.setdefault(layer_name, [0.0, 0])
                total[0], total[1] = total[0] + value * len(x), total[1] + len(x)

        return hook

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._measuring = dataloader_idx == 0 and not trainer.sanity_checking

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from alexlab.metrics import lrn_strength

        self._measuring = False
        for layer_name, (total, images) in self._sums.items():
            if images:
                pl_module.log(lrn_strength(layer_name), float(total) / images, sync_dist=True)
        self._sums = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class TrainingCurve(L.Callback):
    """The training curve: every `every` training batches, the mean top-1 error and loss of those batches (as
    trained: with dropout and augmentation), at the optimiser step reached. `alexlab report` reads the speed of
    learning from it (the steps until the training error first reaches a threshold: the paper's ReLU and dropout
    claims), finer than once an epoch.

    Each batch's values stay on the device (training_step returns them) and are turned into numbers once an epoch,
    so recording costs no wait for the device. Rows are {"step": optimiser steps done at the bin's last batch,
    "train/top1_err", "train/loss"}; a bin left open at the end of training is closed with the batches it has.
    Each epoch's new rows also go to the step-based loggers (W&B, TensorBoard) as curve/train_top1_err and
    curve/train_loss at their step; not to the CSV log, which keeps one row per epoch."""

    def __init__(self, every: int) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise BadValue(f"train_curve_every must be a whole number >= 1, got {every!r}")
        self.every = every
        self.curve: list[dict[str, float]] = []
        self._open: list[list[float]] = []  # the open bin's [top1_err, loss, step] per batch, as numbers
        self._pending: list[tuple] = []  # this epoch's (top1_err, loss) device tensors and steps, not yet numbers
        self._logged = 0  # rows handed to the loggers

    def state_dict(self) -> dict:  # in every checkpoint: a resumed run keeps its curve, and logs what it had not yet
        self._convert()
        return {"curve": self.curve, "open": self._open, "logged": self._logged}

    def load_state_dict(self, state_dict: dict) -> None:
        self.curve = list(state_dict["curve"])
        self._open = [list(values) for values in state_dict["open"]]
        # rows closed since the last epoch's end (an interrupt mid-epoch) were never handed to the loggers
        self._logged = state_dict.get("logged", len(self.curve))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if isinstance(outputs, dict) and "top1_err" in outputs:
            self._pending.append((outputs["top1_err"].detach(), outputs["loss"].detach(), trainer.global_step))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._convert()
        self._log(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._convert()
        if self._open:
            self._close()
        self._log(trainer)

    def _log(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            log_curve(trainer.loggers, self.curve[self._logged :])
        self._logged = len(self.curve)

    def _convert(self) -> None:
        if not self._pending:
            return
        values = torch.stack([torch.stack(pending[:2]).float() for pending in self._pending]).cpu().tolist()  # 1 wait
        for (error, loss), (*_, step) in zip(values, self._pending, strict=True):
            self._open.append([error, loss, step])
            if len(self._open) == self.every:
                self._close()
        self._pending = []

    def _close(self) -> None:
        errors, losses, steps = zip(*self._open, strict=True)
        row = {
            "step": int(steps[-1]),
            metrics.TRAIN_TOP1: sum(errors) / len(errors),
            metrics.TRAIN_LOSS: sum(losses) / len(losses),
        }
        self.curve.append(row)
        self._open = []


class CleanTrainingError(L.Callback):
    """The clean training error, as the paper's Figure 1 reads the speed of learning: every `every` optimiser steps
    (and before the first), the network in eval mode (no dropout) on a fixed sample of `size` training images seen
    as the validation images are (no augmentation: the data module's train_eval sample), its top-1 error and loss
    at exactly that step's weights. Rows {"step", "train_clean/top1_err", "train_clean/loss"} go to the run record's
    clean_curve and to the step-based loggers as curve/train_clean_top1_err; `alexlab report` counts the steps to a
    training error on them where a run has them (the speed claims need them). `stop_below`: end training once the
    clean error is at or below this fraction (a speed run has nothing more to measure).

    The sample is held as one tensor on the training device, taken once: evaluating it draws no random numbers, so
    a run trains exactly as it would without this callback."""

    def __init__(self, every: int, size: int, stop_below: float | None = None) -> None:
        for name, value in (("train_clean_every", every), ("train_clean_size", size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadValue(f"{name} must be a whole number >= 1, got {value!r}")
        if stop_below is not None and not 0 < stop_below < 1:
            raise BadValue(f"train_clean_stop must be an error between 0 and 1 (a fraction), got {stop_below!r}")
        self.every, self.size, self.stop_below = every, size, stop_below
        self.curve: list[dict[str, float]] = []
        self._sample: tuple[torch.Tensor, torch.Tensor] | None = None
        self.seconds = 0.0  # spent measuring (PhaseTimes reads it)

    def state_dict(self) -> dict:  # in every checkpoint: a resumed run keeps its curve
        return {"curve": self.curve}

    def load_state_dict(self, state_dict: dict) -> None:
        self.curve = list(state_dict["curve"])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dataset = getattr(trainer.datamodule, "train_eval_set", None)
        if dataset is None:
            raise BadValue("train_clean_every needs the train_eval sample of training images: data.train_eval_size > 0")
        count = min(self.size, len(dataset))
        items = dataset.__getitems__(list(range(count))) if hasattr(dataset, "__getitems__") else [
            dataset[i] for i in range(count)]  # fmt: skip
        x = torch.stack([image for image, _ in items]).to(pl_module.device)
        self._sample = (x, torch.tensor([label for _, label in items], device=pl_module.device))
        if not self.curve or self.curve[-1]["step"] < trainer.global_step:
            self._measure(trainer, pl_module)  # the weights it starts from (step 0, or the resumed step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0 and (not self.curve or self.curve[-1]["step"] < trainer.global_step):
            self._measure(trainer, pl_module)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        start = time.perf_counter()
        x, y = self._sample
        was_training = pl_module.training
        pl_module.eval()
        errors, losses = 0.0, 0.0
        with torch.no_grad():
            for images, labels in zip(x.split(256), y.split(256), strict=True):
                logits = pl_module(images)
                errors += float((logits.argmax(1) != labels).sum())
                losses += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
        pl_module.train(was_training)
        row = {"step": trainer.global_step, metrics.CLEAN_TOP1: errors / len(y),
               metrics.CLEAN_LOSS: losses / len(y)}  # fmt: skip
        self.curve.append(row)
        if trainer.is_global_zero:
            log_curve(trainer.loggers, [row], (metrics.CLEAN_TOP1, metrics.CLEAN_LOSS))
        self.seconds += time.perf_counter() - start
        if self.stop_below is not None and row[metrics.CLEAN_TOP1] <= self.stop_below:
            trainer.should_stop = True


def _fmt(key: str, value: float) -> str:
    if math.isnan(value):
        return f"{key}=nan"
    if is_fraction(key):
        return f"{key}={percent(value)}"
    if key == "lr":
        return f"lr={value:.3g}"
    return f"{key}={value:.4g}"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each checkpoint whole or not at all (alexlab.record.atomic_write): into
    a temporary file beside it, flushed to the disk, then renamed. Lightning's own writes a temporary file in the
    system's temporary directory and moves it, which across filesystems is a copy that a full disk cuts short,
    leaving a truncated last.ckpt that nothing can resume from."""

    seconds = 0.0  # spent writing checkpoints in this process (PhaseTimes reads it)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        from alexlab.record import atomic_write

        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        start = time.perf_counter()
        # serialised in memory first, as Lightning does: the file write alone can then fail (a full disk), and it
        # fails as an OSError (torch.save straight into a full disk fails as "RuntimeError: unexpected pos")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(Path(path), lambda f: f.write(buffer.getbuffer()))
        AtomicCheckpointIO.seconds += time.perf_counter() - start


class CheckpointOnInterrupt(L.Callback):
    """SIGTERM (a pre-emption, `kill`, a cluster's time limit) or SIGINT (Ctrl-C) while fitting: the run stops after
    the current training step and saves `path` (the run's last.ckpt) there; `alexlab train ... resume=true` goes on
    from that step. Lightning handles SIGTERM this way (it stops at the next step boundary with SIGTERMException);
    during fit, Ctrl-C is turned into the same SIGTERM instead of a KeyboardInterrupt that can land between
    backward and optimizer step. A second Ctrl-C interrupts at once, without a checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._previous_sigint = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous_sigint = signal.signal(signal.SIGINT, self._sigint_as_sigterm)

    def _sigint_as_sigterm(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the second Ctrl-C: KeyboardInterrupt now
        log.warning("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to stop at once)")
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        self._restore_sigint()
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            if trainer.validating:
                # Lightning stops a validation between two batches; a checkpoint of that moment holds an epoch whose
                # training is done and whose validation is not, and a run resumed from it goes on past the
                # validation: that epoch would have no validation error and no training metrics. Not saved: the
                # run goes on from the checkpoint of the epoch before (last.ckpt, saved at every epoch's end) and
                # trains this epoch again, or starts again in its first epoch.
                if trainer.is_global_zero:
                    log.warning("interrupted while validating epoch %d: it is trained again on resume (%s is the "
                                "epoch before's)", trainer.current_epoch, self.path)  # fmt: skip
                return
            trainer.save_checkpoint(self.path)  # every rank calls it (a collective); rank zero writes
            if trainer.is_global_zero:
                log.warning("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch,
                            trainer.global_step, self.path)  # fmt: skip


class PlateauStep(L.Callback):
    """Steps the paper's schedule (ReduceLROnPlateau on the validation error, module.configure_optimizers) at the end
    of each validation, with its error. Lightning would step it at the training epoch's end, which comes after the
    checkpoints of the epoch are saved (ModelCheckpoint saves at the validation's end; Lightning runs checkpoint
    callbacks after all others, so after this one), and skips it in the epoch a run resumes in: a resumed run's
    schedule would never see one epoch's validation error, and drop the lr at other epochs than an unbroken run's.
    The module's lr_scheduler_step leaves the plateau scheduler to this callback."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                config.scheduler.step(float(trainer.callback_metrics[config.monitor]))


class StopOnDivergence(L.Callback):
    """Fails the run with one clear line when the training loss is NaN or infinite (a diverged run), instead of
    training on for hours and reporting a meaningless error. Checked every `log_every_n_steps` batches (each check
    waits for the device, so not on every step) and at each epoch's end."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.log_every_n_steps == 0:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self._check(float(loss), trainer, "train loss")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if metrics.TRAIN_LOSS in trainer.callback_metrics:
            self._check(float(trainer.callback_metrics[metrics.TRAIN_LOSS]), trainer, metrics.TRAIN_LOSS)

    @staticmethod
    def _check(value: float, trainer: L.Trainer, name: str) -> None:
        # Under DDP every rank checks at the same step and they decide together: one rank stopping alone would
        # leave the others waiting for it in the next gradient all-reduce.
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            where = f"{value}" if not math.isfinite(value) else "nan or inf on another rank"
            raise Diverged(
                f"diverged: {name} is {where} at epoch {trainer.current_epoch}, step {trainer.global_step} "
                "(try a lower optimizer.lr)"
            )


class OptunaPruning(L.Callback):
    """Reports the objective to an Optuna trial after every validation and stops the run when the study's pruner
    says so. Set up by train.py when the Optuna sweeper runs this job as a trial (alexlab.optuna_storage.
    current_trial). The trial is reached through its storage, so this works whether the job runs in the sweeper's
    process or in another one. A multi-objective study is not pruned (Optuna cannot): nothing is reported."""

    def __init__(self, trial, monitor: str) -> None:
        self.trial = trial if len(trial.study.directions) == 1 else None
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        import optuna

        value = float(trainer.callback_metrics[self.monitor])
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:  # one report per epoch; under DDP the other ranks follow rank zero's decision
            self.trial.report(value, step=epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {epoch} ({self.monitor}={value:.4f})")


def log_curve(
    loggers: list, rows: list[dict], keys: tuple[str, ...] = (metrics.TRAIN_TOP1, metrics.TRAIN_LOSS)
) -> None:
    """Training-curve rows to the step-based loggers (W&B, TensorBoard) as curve/<key with _ for />: train/top1_err
    as curve/train_top1_err, at their step; not to the CSV log, which keeps one row per epoch."""
    from lightning.pytorch.loggers import CSVLogger

    for row in rows:
        metrics = {"curve/" + key.replace("/", "_"): row[key] for key in keys if key in row}
        for logger in loggers:
            if not isinstance(logger, CSVLogger):
                logger.log_metrics(metrics, step=row["step"])
