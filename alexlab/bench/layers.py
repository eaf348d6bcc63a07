"""The bench's layers section (what LRN and alexlab's max-pooling cost in the training step) and its shared-CPU
section (the step beside busy processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
from hydra.utils import instantiate

from alexlab.bench.common import fixed_batch, stats
from alexlab.bench.training import plain_loop

BUSY_PROCESS = "while True: pass"  # one core's worth of load


def bench_layers(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """What LRN and alexlab's max-pooling cost in a training step: plain loops of copies of the network (the same
    init), in alternating windows of `steps` steps as in bench_training: with LRN (the config's, or `lrn=paper` when
    the config has none), without LRN, with LRN but PyTorch's nn.MaxPool2d in place of alexlab.model.layers.MaxPool,
    and, where the LRN runs its fused CPU kernel (alexlab.model.cpu_kernels), with LRN in its tensor passes instead
    (the fallback where the kernel cannot build). Ratios are medians of the per-round ratios of step times."""
    import contextlib

    import lightning as L

    from alexlab.model import cpu_kernels
    from alexlab.model.layers import MaxPool

    lrn = cfg.model.lrn if cfg.model.lrn != "off" else "paper"
    x, y = fixed_batch(cfg, device)
    # the maps have the batch's device and dtype, except under autocast, whose bfloat16 maps take the tensor passes
    mixed = str(cfg.trainer.get("precision", "32-true")).endswith("-mixed")
    fused = cpu_kernels.available(x) and not mixed
    arms = [("lrn", lrn), ("no_lrn", "off"), ("stock_pooling", lrn)] + ([("lrn_tensor_passes", lrn)] if fused else [])
    optimizer = instantiate(cfg.optimizer)
    networks = {}
    for name, kind in arms:
        L.seed_everything(int(cfg.seed), verbose=False)
        networks[name] = instantiate(cfg.model, lrn=kind)
    stock = networks["stock_pooling"].features
    for name, layer in stock.named_children():
        if isinstance(layer, MaxPool):
            setattr(stock, name, torch.nn.MaxPool2d(layer.kernel_size, layer.stride))
    loops = {name: plain_loop(network, optimizer, x, y, device, cfg) for name, network in networks.items()}

    def run(name: str, steps: int) -> float:
        with cpu_kernels.disabled() if name == "lrn_tensor_passes" else contextlib.nullcontext():
            return loops[name](steps)

    for name in loops:
        run(name, max(1, k["warmup"]))
    seconds: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(k["reps"]):
        for name in loops:
            seconds[name].append(run(name, k["steps"]) / k["steps"])

    def ratio(a: str, b: str) -> dict:
        return stats([s / t for s, t in zip(seconds[a], seconds[b], strict=True)])

    return {
        "lrn": lrn,
        "lrn_path": "fused kernel" if fused else "tensor passes",
        "step_s": {name: stats(values) for name, values in seconds.items()},
        "lrn_over_no_lrn": ratio("lrn", "no_lrn"),  # the step with LRN against the step without
        "stock_pooling_over_ours": ratio("stock_pooling", "lrn"),  # > 1: alexlab's pooling is faster
        # the step with the LRN's tensor passes against the step with its kernel (> 1: the kernel is faster)
        "tensor_passes_over_kernel": ratio("lrn_tensor_passes", "lrn") if fused else None,
    }


def bench_shared_cpu(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """How a training step shares a CPU with other work: the plain loop of the config's network (as in
    bench_training) in `reps` windows of `steps` steps alone, then with `load` busy processes beside it. Per step:
    wall seconds and this process's CPU seconds (all its threads). On a fair share the wall time grows as the
    cores this process gets shrink (fair_slowdown: its threads and the busy processes share the cores equally),
    while its CPU time per step stays what it is alone; CPU time that grows with the load is burnt, not used
    (threads spinning while they wait: see alexlab/cpu.py)."""
    import lightning as L

    L.seed_everything(int(cfg.seed), verbose=False)
    x, y = fixed_batch(cfg, device)
    steps = plain_loop(instantiate(cfg.model), instantiate(cfg.optimizer), x, y, device, cfg)
    steps(max(1, k["warmup"]))

    def windows() -> dict:
        wall, cpu = [], []
        for _ in range(k["reps"]):
            cpu_start = time.process_time()
            wall.append(steps(k["steps"]) / k["steps"])
            cpu.append((time.process_time() - cpu_start) / k["steps"])
        return {"wall_s_per_step": stats(wall), "cpu_s_per_step": stats(cpu)}

    alone = windows()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_PROCESS]) for _ in range(k["load"])]
    try:
        loaded = windows()
    finally:
        for process in busy:
            process.kill()
            process.wait()
    threads, cores = (
        torch.get_num_threads(),
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    )
    used_alone = min(threads, cores)
    used_loaded = min(used_alone, threads * cores / (threads + k["load"]))
    return {
        "load": k["load"],
        "threads": threads,
        "cores": cores,
        "alone": alone,
        "loaded": loaded,
        "wall_loaded_over_alone": loaded["wall_s_per_step"]["median"] / alone["wall_s_per_step"]["median"],
        "cpu_loaded_over_alone": loaded["cpu_s_per_step"]["median"] / alone["cpu_s_per_step"]["median"],
        "fair_slowdown": used_alone / used_loaded,
        "omp_wait": {name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")},
    }
