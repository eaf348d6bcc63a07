"""The bench's data section (images/s the config's loader delivers against what the Trainer consumes) and the peak
FLOP/s of a float32 matmul on the device."""

from __future__ import annotations

import time

import torch
from hydra.utils import instantiate

from alexlab.bench.common import stats, sync


def bench_data(cfg, device: torch.device, k: dict[str, int], consumed: float) -> dict:

    datamodule = instantiate(cfg.data)
    datamodule.training_device = device  # data.decode=auto decides by it
    setup_start = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - setup_start
    loader = datamodule.train_dataloader()

    def batches():
        while True:  # epoch after epoch, as training sees them (a new epoch's first batch included)
            for batch in loader:
                x, y = datamodule.transfer_batch_to_device(batch, device, 0)
                sync(device)
                yield x, y

    stream = batches()
    for _ in range(k["loader_warmup"]):
        next(stream)
    rates = []
    for _ in range(k["reps"]):
        start, images = time.perf_counter(), 0
        for _ in range(k["loader_batches"]):
            images += len(next(stream)[1])
        rates.append(images / (time.perf_counter() - start))
    stream.close()
    delivered = stats(rates)
    return {
        "batch_size": int(cfg.data.batch_size),
        "num_workers": int(cfg.data.get("num_workers", 0)),
        "decode": "device" if datamodule.decodes_on_device else "loader",
        "batches": k["loader_batches"],
        "warmup": k["loader_warmup"],
        "setup_s": setup_s,
        "loader_images_per_s": delivered,
        "model_images_per_s": consumed,
        "ratio_loader_over_model": delivered["median"] / consumed,
    }


def matmul_timer(device: torch.device, k: dict[str, int]):
    """`rate()`: FLOP/s of `matmul_reps` float32 matmuls of size `matmul_size` on the device, timed now."""
    n = k["matmul_size"]
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    torch.mm(a, b)  # warm-up
    sync(device)

    def rate() -> float:
        start = time.perf_counter()
        for _ in range(k["matmul_reps"]):
            torch.mm(a, b)
        sync(device)
        return 2 * n**3 * k["matmul_reps"] / (time.perf_counter() - start)

    return rate


def bench_arithmetic(steps, flops_per_step: float, device: torch.device, k: dict[str, int]) -> dict:
    """The training step's FLOP/s against the matmul's, paired: `reps` rounds of a window of `steps` plain-loop
    steps (`steps(count)` -> seconds) followed by a window of matmuls, so that each round's share of peak is
    measured under one machine state; the share is the median of the rounds' shares (a peak measured minutes
    apart from the step varied by a fifth on a shared machine)."""
    rate = matmul_timer(device, k)
    steps(max(1, k["warmup"]))
    achieved, peak = [], []
    for _ in range(k["reps"]):
        achieved.append(flops_per_step * k["steps"] / steps(k["steps"]))
        peak.append(rate())
    return {
        "achieved_flops_per_s": stats(achieved),
        "peak_flops_per_s": stats(peak),
        "share_of_peak": stats([a / b for a, b in zip(achieved, peak, strict=True)]),
    }
