"""What the bench's sections share: the device, a fixed batch, timing statistics, autocast for a precision."""

from __future__ import annotations

import contextlib
import statistics

import torch

from alexlab.errors import BadValue

# Training FLOPs per multiply-accumulate: a MAC is 2 FLOPs, and forward + backward costs about 3x the forward pass
# (the backward computes the gradients of both the inputs and the weights, each about one forward's work).
TRAIN_FLOPS_PER_MAC = 6

# Above this many MACs per training batch (forward), the step is "heavy" and the defaults shrink (HEAVY_DEFAULTS).
HEAVY_STEP_MACS = 20e9

# Published AlexNet training speeds (docs/paper.md gives the sources), which the table sets the Trainer's images/s
# against for a network of the paper's input size (224 or 227 px)
PUBLISHED_IMAGES_PER_S = {
    "Titan X (Maxwell), cuDNN fp32, batch 128 (convnet-benchmarks)": 1_700,
    "V100, batch 512, real data (tf_cnn_benchmarks)": 3_861,
}


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}


def pick_device(cfg) -> torch.device:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if accelerator in ("gpu", "cuda"):
        raise BadValue(f"trainer.accelerator={accelerator} but this machine has no GPU; use trainer.accelerator=cpu")
    return torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fixed_batch(cfg, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(cfg.seed))
    size, channels, batch_size = int(cfg.model.input_size), int(cfg.model.in_channels), int(cfg.data.batch_size)
    x = torch.randn(batch_size, channels, size, size, generator=generator)
    y = torch.randint(0, int(cfg.data.num_classes), (batch_size,), generator=generator)
    return x.to(device), y.to(device)


def autocast_for(precision: str, device: torch.device):
    """The plain loop's twin of the Trainer's precision plugin: float32, or bfloat16 autocast for bf16-mixed."""
    if precision in ("32-true", "32"):
        return contextlib.nullcontext
    if precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    raise BadValue(f"trainer.precision={precision}: the bench compares 32-true or bf16-mixed")
