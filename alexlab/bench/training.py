"""The bench's training section: the LightningModule through a Trainer against a plain PyTorch loop, in alternating
windows, and the plain loop itself (the layers section uses it too)."""

from __future__ import annotations

import copy
import logging
import statistics
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from alexlab.bench.common import autocast_for, fixed_batch, stats, sync
from alexlab.module import AlexNetModule, build_module


class _BenchModule(AlexNetModule):
    """The module as it trains, without validation: the plateau schedule's monitor is absent, so it is not strict."""

    def configure_optimizers(self):
        config = super().configure_optimizers()
        config["lr_scheduler"]["strict"] = False
        return config


class _RepeatBatch(Dataset):
    """The one fixed batch, `total` times (batch_size=None: each item is a whole batch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, total: int) -> None:
        self.x, self.y, self.total = x, y, total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int):
        return self.x, self.y


class _AlternateWindows(L.Callback):
    """At the start of step `warmup + r * steps`: closes Trainer window r-1, runs plain window r-1, opens Trainer
    window r. The plain loop's warm-up runs with the Trainer's first step."""

    def __init__(self, plain_steps, k: dict[str, int], device: torch.device) -> None:
        self.plain_steps, self.k, self.device = plain_steps, k, device
        self.windows_end = k["warmup"] + k["reps"] * k["steps"]
        self.trainer_s: list[float] = []
        self.plain_s: list[float] = []
        self.opened: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step, k = trainer.global_step, self.k
        if step == 0 and k["warmup"]:
            self.plain_steps(k["warmup"])
        if step < k["warmup"] or (step - k["warmup"]) % k["steps"]:
            return
        sync(self.device)
        now = time.perf_counter()
        if self.opened is not None:
            self.trainer_s.append(now - self.opened)
            self.plain_s.append(self.plain_steps(k["steps"]))
        if step < self.windows_end:
            sync(self.device)
            self.opened = time.perf_counter()


def bench_training(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """Trainer and plain loop in alternating windows of `steps` steps: Trainer window r, then plain window r, run
    from inside the Trainer's own loop (a callback at the start of a step), so that each pair of windows shares
    the machine's state of that moment (clock, caches, other load): the paired ratios are what is reported."""
    L.seed_everything(int(cfg.seed), verbose=False)
    network = instantiate(cfg.model)
    plain_network = copy.deepcopy(network)  # the same init, before either trains
    x, y = fixed_batch(cfg, device)
    timer = _AlternateWindows(plain_loop(plain_network, instantiate(cfg.optimizer), x, y, device, cfg), k, device)
    total = timer.windows_end + 1  # the extra step's start closes the last Trainer window (its hooks, its fetch)
    trainer = quiet_trainer(cfg, device, total, timer)
    trainer.fit(build_module(cfg, network, _BenchModule), train_dataloaders=DataLoader(_RepeatBatch(x, y, total),
                                                                                       batch_size=None))  # fmt: skip
    if len(timer.trainer_s) != k["reps"]:
        raise RuntimeError(f"bench: the Trainer ran {trainer.global_step} of {total} steps")
    images = k["steps"] * int(x.shape[0])
    trainer_rates = [images / seconds for seconds in timer.trainer_s]
    plain_rates = [images / seconds for seconds in timer.plain_s]
    paired = [t / p for t, p in zip(trainer_rates, plain_rates, strict=True)]
    return {
        "batch_size": int(x.shape[0]),
        "steps": k["steps"],
        "warmup": k["warmup"],
        "reps": k["reps"],
        "precision": str(cfg.trainer.get("precision", "32-true")),
        "channels_last": bool(cfg.channels_last),
        "compile": bool(cfg.compile),
        "trainer": {"images_per_s": stats(trainer_rates)},
        "plain": {"images_per_s": stats(plain_rates)},
        "paired_ratios": stats(paired),
        "ratio_trainer_over_plain": statistics.median(paired),
    }


class QuietTrainer(L.Trainer):
    """A Trainer whose fit says nothing below a warning (the bench prints its own table)."""

    def fit(self, *args, **kwargs):
        quiet = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
        levels = [lg.level for lg in quiet]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for lg in quiet:
                lg.setLevel(logging.WARNING)
            try:
                return super().fit(*args, **kwargs)
            finally:
                for lg, level in zip(quiet, levels, strict=True):
                    lg.setLevel(level)


def quiet_trainer(cfg, device: torch.device, total: int, callback: L.Callback) -> L.Trainer:
    """The config's Trainer for `total` training steps on one device, with nothing else: no validation, logger,
    checkpoint, progress bar or model summary."""
    kwargs = {key: value for key, value in cfg.trainer.items() if key != "_target_"}
    kwargs.update(
        accelerator=device.type,
        devices=1,
        max_steps=total,
        max_epochs=-1,
        limit_train_batches=None,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accumulate_grad_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        default_root_dir=cfg.paths.run_dir,
    )
    return QuietTrainer(**kwargs)


def plain_loop(network, optimizer, x: torch.Tensor, y: torch.Tensor, device: torch.device, cfg):
    """`steps(count)`: seconds for `count` training steps of `network` in plain PyTorch (forward, cross-entropy,
    backward, optimiser step) on the fixed batch, with the config's precision, gradient clipping, channels_last and
    compile switches."""
    from alexlab.module import parameter_groups, prepare_network

    speed = {"channels_last": bool(cfg.channels_last), "compile": bool(cfg.compile)}
    clip = cfg.trainer.get("gradient_clip_val")
    autocast = autocast_for(str(cfg.trainer.get("precision", "32-true")), device)
    network = prepare_network(network.to(device), **speed).train()
    plain_optimizer = optimizer(parameter_groups(network, bool(cfg.decay_biases)))
    inputs = x.contiguous(memory_format=torch.channels_last) if speed["channels_last"] else x

    def steps(count: int) -> float:
        sync(device)
        start = time.perf_counter()
        for _ in range(count):
            plain_optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(network(inputs), y)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(network.parameters(), float(clip))
            plain_optimizer.step()
        sync(device)
        return time.perf_counter() - start

    return steps
