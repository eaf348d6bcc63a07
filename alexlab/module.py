"""The LightningModule: cross-entropy, SGD and the lr schedules, top-1/top-5 error, 10-crop testing."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from alexlab import metrics
from alexlab.errors import BadValue

SCHEDULES = ("paper", "step", "cosine", "constant")
# The centre crop's place among torchvision's TenCrop views: the four corners, the centre, then their mirror images
CENTRE_VIEW = 4


class TopKError(MulticlassAccuracy):
    """1 - top-k accuracy: the paper reports error rates."""

    def compute(self) -> torch.Tensor:
        return 1.0 - super().compute()


class AlexNetModule(L.LightningModule):
    """Trains and evaluates any network of alexlab.model.alexnet.AlexNet.

    Args:
        model: the network.
        num_classes: for the error metrics.
        optimizer: a partial optimiser (called with the parameters), e.g. functools.partial(torch.optim.SGD, lr=0.01).
        schedule: {"name": "paper" | "step" | "cosine" | "constant", ...its settings} (see conf/schedule/).
        channels_last: keep the weights and inputs in NHWC order (faster convolutions on recent GPUs' tensor cores).
        compile: compile the network's forward with torch.compile (TorchInductor); the state_dict is unchanged.
        decay_biases: apply the optimiser's weight decay to the biases too. False (the default) as cuda-convnet and
            Caffe's AlexNet train (weight decay on the weights only; the paper's update rule is written for the
            weights w); True decays every parameter, as one SGD group over self.parameters() does.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optimizer: Callable,
        schedule: dict,
        channels_last: bool = False,
        compile: bool = False,
        decay_biases: bool = False,
    ):
        super().__init__()
        if schedule["name"] not in SCHEDULES:
            raise BadValue(f"schedule={schedule['name']!r} is not one of {', '.join(SCHEDULES)}")
        self.model = prepare_network(model, channels_last=channels_last, compile=compile)
        self.channels_last = channels_last
        self._logged: dict[str, int] = {}  # split -> the epoch its metric objects were last handed to Lightning
        self.optimizer_factory = optimizer
        if not isinstance(decay_biases, bool):
            raise BadValue(f"decay_biases must be true or false, got {decay_biases!r}")
        self.decay_biases = decay_biases
        self.schedule = dict(schedule)
        # Keyed "<split>_<name>" and logged as "<split>/<name>" (a ModuleDict key may not be "train": a Module method).
        self.metrics = nn.ModuleDict()
        for split in metrics.SPLITS:
            # a NaN loss counts as infinite (the epoch's loss is then infinite: a diverged run) without torchmetrics'
            # warning line; "disable" would also drop the batch-size weights (torchmetrics 1.x)
            self.metrics[f"{split}_loss"] = MeanMetric(nan_strategy=math.inf)
            self.metrics[f"{split}_top1_err"] = TopKError(num_classes, top_k=1, average="micro")
            self.metrics[f"{split}_top5_err"] = TopKError(num_classes, top_k=min(5, num_classes), average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        scores = logits.detach()
        self._log_split("train", scores, loss.detach(), y, batch_idx)
        # this step's own top-1 error, for the training curve (callbacks.TrainingCurve); stays on the device
        return {"loss": loss, "top1_err": (scores.argmax(1) != y).float().mean()}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        logits = self(x)
        split = ("val", "train_eval")[dataloader_idx]  # the data module's val_dataloader order
        self._log_split(split, logits, F.cross_entropy(logits, y), y, batch_idx)

    def test_step(self, batch, batch_idx):
        """The test images in both views (metrics.py): [B, 10, C, H, W], the ten crops, whose softmax averaged is the
        ten-crop prediction and whose fifth is the centre view; `test/*` is the view the data module's test_views
        names. (A batch of one view, [B, C, H, W], is the centre view alone.)"""
        x, y = batch
        if x.ndim == 4:
            logits = self(x)
            self._log_split(metrics.TEST, logits, F.cross_entropy(logits, y), y, batch_idx)
            return
        b, v = x.shape[:2]
        logits = self(x.flatten(0, 1)).view(b, v, -1)
        log_probs = F.softmax(logits, dim=2).mean(1).clamp_min(1e-12).log()  # the paper's 10-crop test
        centre = logits[:, CENTRE_VIEW]
        views = {metrics.TEST_CENTRE: (centre, F.cross_entropy(centre, y)),
                 metrics.TEST_TEN_CROP: (log_probs, F.nll_loss(log_probs, y))}  # fmt: skip
        for split, (scores, loss) in views.items():
            self._log_split(split, scores, loss, y, batch_idx)
        chosen = metrics.TEST_TEN_CROP if self.test_views() == "ten_crop" else metrics.TEST_CENTRE
        self._log_split(metrics.TEST, *views[chosen], y, batch_idx)

    def test_views(self) -> str:
        """The view `test/*` reports: the data module's test_views (centre without a data module)."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(datamodule, "test_views", "centre")

    def _log_split(self, split: str, scores: torch.Tensor, loss: torch.Tensor, y: torch.Tensor, batch_idx: int) -> None:
        # The metric objects accumulate on the device every step (no host sync) and are handed to Lightning once
        # per epoch: Lightning computes a logged Metric over all of the epoch's updates at the epoch's end, then
        # resets it. Calling self.log on every step costs milliseconds of Python a step, a few % of a fast CPU step.
        self.metrics[f"{split}_loss"].update(loss, weight=y.shape[0])
        self.metrics[f"{split}_top1_err"].update(scores, y)
        self.metrics[f"{split}_top5_err"].update(scores, y)
        if self._logged.get(split) == self.current_epoch:
            return
        self._logged[split] = self.current_epoch  # the epoch's first batch here (not batch 0 in a resumed epoch)
        for name in ("loss", "top1_err", "top5_err"):
            metric = self.metrics[f"{split}_{name}"]
            shown = name == "top1_err" and split in (metrics.TRAIN, metrics.VAL, metrics.TEST)
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=shown, add_dataloader_idx=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = rng_states()
        trainer = self._trainer
        if trainer is not None and trainer.training:
            done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
            if done < trainer.num_training_batches:  # mid-epoch (an interrupt): keep the epoch's metric sums so far
                checkpoint["train_metric_states"] = {
                    name: {key: value.clone() for key, value in metric.metric_state.items()}
                    for name, metric in self.metrics.items()
                    if name.startswith("train_")
                }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:  # a resumed run draws the dropout masks and augmentations of an unbroken one
            set_rng_states(checkpoint["rng_states"])
        for name, states in checkpoint.get("train_metric_states", {}).items():
            metric = self.metrics[name]
            for key, value in states.items():
                setattr(metric, key, value.to(self.device))
            metric._update_count = max(metric._update_count, 1)  # it has seen updates: compute() must not warn

    def lr_scheduler_step(self, scheduler, metric) -> None:
        # The paper's schedule (ReduceLROnPlateau) is stepped by callbacks.PlateauStep, as soon as the validation
        # error is known and so before the epoch's checkpoint. Lightning steps it later, after that checkpoint, and not
        # at all in the epoch a run resumes in: a resumed run would lose an epoch's validation error from it.
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(parameter_groups(self, self.decay_biases))
        base_lr = optimizer.param_groups[0]["lr"]
        s = self.schedule
        if s["name"] == "paper":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=s["factor"],
                patience=s["patience"],
                min_lr=base_lr * s["factor"] ** s["max_drops"] * 0.999,  # at most max_drops divisions
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": scheduler,
                    "monitor": metrics.VAL_TOP1,
                    "interval": "epoch",
                    "name": "lr",
                },
            }
        if s["name"] == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=s["step_size"], gamma=s["gamma"])
            interval = "epoch"
        elif s["name"] == "cosine":
            total = max(1, int(self.trainer.estimated_stepping_batches))
            warmup = min(total - 1, round(s["warmup_epochs"] * total / max(1, self.trainer.max_epochs)))
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: cosine_with_warmup(step, warmup, total)
            )
            interval = "step"
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
            interval = "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval, "name": "lr"}}


def parameter_groups(module: nn.Module, decay_biases: bool) -> list[dict]:
    """The optimiser's parameter groups: every parameter, or (decay_biases=False) the weights and, with weight
    decay 0, the biases (`bias`, and split=two_gpu's `bias_a`/`bias_b`). `alexlab bench`'s plain loop uses it too.
    The groups are named ("weights", "biases") in the optimiser's state, so a checkpoint says which is which; both
    follow one schedule from one lr, logged once as `lr` (callbacks.EpochHistory)."""
    if decay_biases:
        return [{"params": list(module.parameters())}]
    is_bias = {name: name.rpartition(".")[2].startswith("bias") for name, _ in module.named_parameters()}
    weights = [p for name, p in module.named_parameters() if not is_bias[name]]
    biases = [p for name, p in module.named_parameters() if is_bias[name]]
    return [{"params": weights, "name": "weights"}, {"params": biases, "weight_decay": 0.0, "name": "biases"}]


def rng_states() -> dict:
    """Every random generator a training step draws from, as tensors, ints and lists only (a checkpoint holding
    them still loads with torch.load(weights_only=True))."""
    name, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, state, gauss = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
        "python": [version, list(state), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached_gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def prepare_network(network: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """The network as it trains: NHWC weights with channels_last, a compiled forward with compile (in place, so
    parameter names and checkpoints stay those of the plain network). `alexlab bench` prepares its plain loop's
    copy the same way."""
    for name, value in (("channels_last", channels_last), ("compile", compile)):
        if not isinstance(value, bool):
            raise BadValue(f"{name} must be true or false, got {value!r}")
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    if compile:
        network.compile()
    return network


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """The lr factor at `step`: linear from 1/(warmup+1) to 1 over `warmup` steps, then cosine down to 0 at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_module(cfg, network: nn.Module, cls: type[AlexNetModule] | None = None) -> AlexNetModule:
    """The LightningModule of a composed config: `network` trained with the config's optimiser, schedule and speed
    switches (`cls`: a subclass of AlexNetModule to build instead)."""
    from hydra.utils import instantiate

    return (cls or AlexNetModule)(
        network,
        num_classes=cfg.data.num_classes,
        optimizer=instantiate(cfg.optimizer),
        schedule=cfg.schedule,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
        decay_biases=cfg.decay_biases,
    )
