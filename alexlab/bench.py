"""`alexlab bench [overrides]`: where a training step's time goes, measured side by side in one process.

Six sections (seven with `bench.load=N`), each written to `bench.json` in
`<paths.output_root>/bench/<date_time_microseconds>/` and printed as one table:

1. training: images/s of the LightningModule through a Lightning Trainer against a plain PyTorch loop (forward,
   cross-entropy, backward, optimiser step) on a copy of the same network with the same init, the same optimiser
   settings, the same precision (bf16-mixed: bfloat16 autocast), channels_last and compile switches, and one fixed
   synthetic batch of the config's shape, already on the device and reused every step (data loading is excluded).
   After `warmup` steps of each, they run in alternating windows of `steps` steps (`reps` Trainer windows, each
   followed by a plain one, started from a callback inside the Trainer's loop), so that each pair is measured
   under the same machine state; the ratio is the median of the pairs' ratios (on a shared 2-core machine, runs
   of the same loop a few seconds apart differ by 10%, which a before-then-after design would report as a ratio).
   The Trainer's window spans from a step's start to the start of the step after its last one: Lightning's hooks,
   the fetch of the batch and the module's torchmetrics updates (loss, top-1/top-5 error) are all inside. The lr
   schedule is not stepped in the plain loop (the default ones step once per epoch).
2. layers: what LRN and alexlab's max-pooling cost: plain loops (as in 1.) of the network with LRN (the config's
   kind, or `lrn=paper`), without LRN, and with LRN but nn.MaxPool2d, in alternating windows; the ratios of their
   step times, median of the rounds (bench_layers). The LRN runs as a long run's does after its first 1,000 steps:
   on a CPU in the loops torch.compile builds (alexlab.model.layers.COMPILE_AFTER), compiled in the warm-up.
3. data: images/s the config's train loader delivers (cfg.data, setup("fit"), `loader_batches` batches per
   repetition after `loader_warmup`), each batch handed to the data module's transfer_batch_to_device as the Trainer
   does (with data.decode=device that is where the batch's JPEGs are decoded and augmented, on the device), against
   the images/s the Trainer consumes: ratio > 1 = not input-bound.
4. arithmetic: training FLOPs per image = MACs (alexlab.info.layer_table, as `alexlab info`) x TRAIN_FLOPS_PER_MAC;
   achieved FLOP/s = that x the plain loop's images/s; peak = a `matmul_size`^2 float32 matmul on the same device.
5. sweep: wall time of a real `alexlab -m experiment=smoke ... seed=0,..,N-1` subprocess (one training batch per
   job), minus the Python start-up of a process that imports alexlab.cli, divided by N: the time per job with
   everything included (compose, build, loggers, first batch, 1 step, teardown).
6. memory: this process's peak RSS, the sweep subprocess's (from a small helper process), the largest of all children's
   (RUSAGE_CHILDREN: loader workers, forked with this process's pages, or the sweep) and, on a GPU,
   torch.cuda.max_memory_allocated.
7. shared CPU (only with `bench.load=N`, N >= 1): the plain loop's wall and CPU seconds per step alone, then with N
   busy processes beside it (bench_shared_cpu): a fair run's wall time grows as its share of the cores shrinks and
   its CPU time per step stays; CPU time that grows with the load is burnt by waiting threads. Run it as
   `GOMP_SPINCOUNT=300000 alexlab bench bench.load=4` to see OpenMP's default spin instead of alexlab's.

Every timing is the median of `reps` repetitions after warm-up, with their min and max.

Bench knobs are `bench.KEY=VALUE` arguments (`+bench.KEY=VALUE` also accepted) next to the usual Hydra overrides:
steps, warmup, reps, loader_batches, loader_warmup, sweep_jobs, sweep_reps, matmul_size, matmul_reps, load.
The defaults take about 30 s with the default config on an idle 2-core CPU (most of it the 2 x 29 training steps of
the small net with LRN). A network whose training step is heavy (more than HEAVY_STEP_MACS multiply-accumulates
per batch, e.g. model=paper at batch 128: 92 G) gets fewer steps by default (steps=1, warmup=1, reps=7): model=paper
runs on a CPU (about 20-25 images/s on an idle 2-core CPU; the default bench takes about 2.5 minutes there;
`data.batch_size=32` for less). `alexlab bench experiment=quickstart` measures the quickstart's own step, its
real Fashion-MNIST pipeline and its memory.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

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

DEFAULTS = {
    # training steps per window: short windows, many pairs (the median of many pairs is what resists the noise of a
    # shared machine, where one window in five can be 10-20% off)
    "steps": 3,
    "warmup": 2,  # training steps before the first window
    "reps": 9,  # repetitions of every timing (for training: pairs of windows)
    # loader batches per repetition: well above the batches the workers prefetch (num_workers x 2), which the
    # first repetition may find ready-made; the later ones find the buffer drained (the loop takes batches faster)
    "loader_batches": 20,
    "loader_warmup": 3,  # loader batches before the first repetition (includes the workers' start)
    "sweep_jobs": 4,  # jobs of the sweep subprocess
    "sweep_reps": 1,  # runs of the sweep subprocess (each takes seconds)
    "matmul_size": 2048,  # n of the n x n float32 matmul that gives the peak FLOP/s
    "matmul_reps": 3,  # matmuls per repetition of the peak
    # busy processes (one core's worth each) the shared-CPU section starts beside the training step; 0 skips it
    "load": 0,
}
HEAVY_DEFAULTS = {"steps": 1, "warmup": 1, "reps": 7}
SWEEP_ARGS = (
    "experiment=smoke",
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "test_after_fit=false",
)
# Runs the sweep and reports its wall time and peak RSS as one JSON line. A child forked from this small process
# reports its own peak RSS; one forked from the bench process would report at least the bench's (Linux keeps the
# forked image's high-water mark across exec).
SWEEP_HELPER = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    start = time.perf_counter()
    code = subprocess.run(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall_s": wall, "maxrss": maxrss, "returncode": code}))
"""


def main(argv: list[str]) -> int:
    """`alexlab bench [overrides] [bench.KEY=VALUE ...]`: measure, print the table, write bench.json."""
    overrides, knobs = split_knobs(argv)
    cfg = compose_config(overrides)
    results = run_bench(cfg, knobs, overrides)
    print_table(results)
    print(f"bench.json: {results['run_dir']}/bench.json")
    return 0


def split_knobs(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Hydra overrides and the bench knobs (`bench.KEY=VALUE` or `+bench.KEY=VALUE`), unknown knobs refused."""
    overrides, knobs = [], {}
    for arg in argv:
        name = arg.lstrip("+")
        if not name.startswith("bench."):
            overrides.append(arg)
            continue
        key, sep, value = name.removeprefix("bench.").partition("=")
        if not sep or key not in DEFAULTS:
            raise BadValue(f"{arg}: not a bench knob; the knobs: {', '.join(f'bench.{k}=N' for k in DEFAULTS)}")
        knobs[key] = value
    return overrides, knobs


def resolve_knobs(knobs: dict[str, str], heavy: bool) -> dict[str, int]:
    values = {**DEFAULTS, **(HEAVY_DEFAULTS if heavy else {})}
    for key, text in knobs.items():
        try:
            values[key] = int(text)
        except ValueError:
            raise BadValue(f"bench.{key}={text}: needs a whole number") from None
    for key, value in values.items():
        minimum = 0 if key in ("warmup", "loader_warmup", "load") else 1
        if value < minimum:
            raise BadValue(f"bench.{key}={value}: must be >= {minimum}")
    return values


def compose_config(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from alexlab.cli import CONFIG_PACKAGE

    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    run_dir = Path(cfg.paths.output_root) / "bench" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    cfg.paths.run_dir = str(run_dir)  # ${hydra:runtime.output_dir} does not resolve outside @hydra.main
    return cfg


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


def run_bench(cfg, knobs: dict[str, str], overrides: list[str]) -> dict:
    from hydra.utils import instantiate

    from alexlab.info import layer_table

    started = time.perf_counter()
    autocast_for(str(cfg.trainer.get("precision", "32-true")), torch.device("cpu"))  # refuses what it cannot pair
    if cfg.model.split == "two_gpu":
        raise BadValue("split=two_gpu spans two devices; bench its one-device twin, split=grouped")
    device = pick_device(cfg)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    network = instantiate(cfg.model)
    size, channels, batch_size = int(cfg.model.input_size), int(cfg.model.in_channels), int(cfg.data.batch_size)
    macs = sum(row.macs for row in layer_table(network, channels, size))
    heavy = macs * batch_size > HEAVY_STEP_MACS
    k = resolve_knobs(knobs, heavy)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    training = bench_training(cfg, device, k)
    layers = bench_layers(cfg, device, k)
    data = bench_data(cfg, device, k, training["trainer"]["images_per_s"]["median"])
    peak = bench_matmul(device, k)
    flops_per_image = macs * TRAIN_FLOPS_PER_MAC
    achieved = flops_per_image * training["plain"]["images_per_s"]["median"]
    arithmetic = {
        "macs_per_image": macs,
        "train_flops_per_mac": TRAIN_FLOPS_PER_MAC,
        "flops_per_image": flops_per_image,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak,
        "matmul_size": k["matmul_size"],
        "share_of_peak": achieved / peak["median"],
    }
    sweep = bench_sweep(cfg, k)
    shared = bench_shared_cpu(cfg, device, k) if k["load"] else None
    memory = {
        "host_peak_rss_bytes": peak_rss(resource.RUSAGE_SELF),
        "children_peak_rss_bytes": peak_rss(resource.RUSAGE_CHILDREN),  # the largest: loader worker or sweep
        "sweep_peak_rss_bytes": sweep["peak_rss_bytes"],
        "gpu_max_memory_allocated_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    }
    results = {
        "run_dir": str(run_dir),
        "overrides": overrides,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "batch_shape": [batch_size, channels, size, size],
        "heavy_defaults": heavy,
        "knobs": k,
        "training": training,
        "layers": layers,
        "data": data,
        "arithmetic": arithmetic,
        "sweep": sweep,
        "shared_cpu": shared,
        "memory": memory,
        "versions": {"torch": torch.__version__},
    }
    results["wall_time_s"] = time.perf_counter() - started
    (run_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def fixed_batch(cfg, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(cfg.seed))
    size, channels, batch_size = int(cfg.model.input_size), int(cfg.model.in_channels), int(cfg.data.batch_size)
    x = torch.randn(batch_size, channels, size, size, generator=generator)
    y = torch.randint(0, int(cfg.data.num_classes), (batch_size,), generator=generator)
    return x.to(device), y.to(device)


def bench_training(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """Trainer and plain loop in alternating windows of `steps` steps: Trainer window r, then plain window r, run
    from inside the Trainer's own loop (a callback at the start of a step), so that each pair of windows shares
    the machine's state of that moment (clock, caches, other load): the paired ratios are what is reported."""
    import lightning as L
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader, Dataset

    from alexlab.module import AlexNetModule

    windows_end = k["warmup"] + k["reps"] * k["steps"]
    total = windows_end + 1  # the extra step's start closes the last Trainer window (its hooks and fetch included)
    L.seed_everything(int(cfg.seed), verbose=False)
    network = instantiate(cfg.model)
    plain_network = copy.deepcopy(network)  # the same init, before either trains
    optimizer = instantiate(cfg.optimizer)
    x, y = fixed_batch(cfg, device)
    speed = {"channels_last": bool(cfg.channels_last), "compile": bool(cfg.compile)}

    plain_steps = plain_loop(plain_network, optimizer, x, y, device, cfg)

    class Module(AlexNetModule):
        def configure_optimizers(self):
            config = super().configure_optimizers()
            config["lr_scheduler"]["strict"] = False  # no validation here: the plateau schedule's monitor is absent
            return config

    class Repeat(Dataset):
        def __len__(self) -> int:
            return total

        def __getitem__(self, index: int):
            return x, y

    class AlternateWindows(L.Callback):
        """At the start of step `warmup + r * steps`: closes Trainer window r-1, runs plain window r-1, opens
        Trainer window r. The plain loop's warm-up runs with the Trainer's first step."""

        def __init__(self) -> None:
            self.trainer_s: list[float] = []
            self.plain_s: list[float] = []
            self.opened: float | None = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            step = trainer.global_step
            if step == 0 and k["warmup"]:
                plain_steps(k["warmup"])
            if step < k["warmup"] or (step - k["warmup"]) % k["steps"]:
                return
            sync(device)
            now = time.perf_counter()
            if self.opened is not None:
                self.trainer_s.append(now - self.opened)
                self.plain_s.append(plain_steps(k["steps"]))
            if step < windows_end:
                sync(device)
                self.opened = time.perf_counter()

    module = Module(
        network,
        num_classes=cfg.data.num_classes,
        optimizer=optimizer,
        schedule=cfg.schedule,
        decay_biases=bool(cfg.decay_biases),
        **speed,
    )
    timer = AlternateWindows()
    trainer_kwargs = {key: value for key, value in cfg.trainer.items() if key != "_target_"}
    trainer_kwargs.update(
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
        callbacks=[timer],
        default_root_dir=cfg.paths.run_dir,
    )
    quiet = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in quiet]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in quiet:
            lg.setLevel(logging.WARNING)
        try:
            trainer = L.Trainer(**trainer_kwargs)
            trainer.fit(module, train_dataloaders=DataLoader(Repeat(), batch_size=None))
        finally:
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
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
        **speed,
        "trainer": {"images_per_s": stats(trainer_rates)},
        "plain": {"images_per_s": stats(plain_rates)},
        "paired_ratios": stats(paired),
        "ratio_trainer_over_plain": statistics.median(paired),
    }


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


def bench_layers(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """What LRN and alexlab's max-pooling cost in a training step: plain loops of three copies of the network
    (the same init), in alternating windows of `steps` steps as in bench_training: with LRN (the config's, or
    `lrn=paper` when the config has none), without LRN, and with LRN but PyTorch's nn.MaxPool2d in place of
    alexlab.model.layers.MaxPool. Ratios are medians of the per-round ratios of step times."""
    import lightning as L
    from hydra.utils import instantiate

    from alexlab.model import layers
    from alexlab.model.layers import MaxPool

    lrn = cfg.model.lrn if cfg.model.lrn != "off" else "paper"
    x, y = fixed_batch(cfg, device)
    optimizer = instantiate(cfg.optimizer)
    networks = {}
    for name, kind in (("lrn", lrn), ("no_lrn", "off"), ("stock_pooling", lrn)):
        L.seed_everything(int(cfg.seed), verbose=False)
        networks[name] = instantiate(cfg.model, lrn=kind)
    stock = networks["stock_pooling"].features
    for name, layer in stock.named_children():
        if isinstance(layer, MaxPool):
            setattr(stock, name, torch.nn.MaxPool2d(layer.kernel_size, layer.stride))
    loops = {name: plain_loop(network, optimizer, x, y, device, cfg) for name, network in networks.items()}
    # the LRN as a long run has it: in its compiled loops on a CPU (layers.COMPILE_AFTER), built in the warm-up
    after, layers.COMPILE_AFTER = layers.COMPILE_AFTER, 0
    try:
        for steps in loops.values():
            steps(max(1, k["warmup"]))
        seconds: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(k["reps"]):
            for name, steps in loops.items():
                seconds[name].append(steps(k["steps"]) / k["steps"])
    finally:
        layers.COMPILE_AFTER = after

    def ratio(a: str, b: str) -> dict:
        return stats([s / t for s, t in zip(seconds[a], seconds[b], strict=True)])

    return {
        "lrn": lrn,
        "step_s": {name: stats(values) for name, values in seconds.items()},
        "lrn_over_no_lrn": ratio("lrn", "no_lrn"),  # the step with LRN against the step without
        "stock_pooling_over_ours": ratio("stock_pooling", "lrn"),  # > 1: alexlab's pooling is faster
    }


# One core's worth of competing work: a process that never waits
BUSY_PROCESS = "while True: pass"


def bench_shared_cpu(cfg, device: torch.device, k: dict[str, int]) -> dict:
    """How a training step shares a CPU with other work: the plain loop of the config's network (as in
    bench_training) in `reps` windows of `steps` steps alone, then with `load` busy processes beside it. Per step:
    wall seconds and this process's CPU seconds (all its threads). On a fair share the wall time grows as the
    cores this process gets shrink (fair_slowdown: its threads and the busy processes share the cores equally),
    while its CPU time per step stays what it is alone; CPU time that grows with the load is burnt, not used
    (threads spinning while they wait: see alexlab/cpu.py)."""
    import lightning as L
    from hydra.utils import instantiate

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


def autocast_for(precision: str, device: torch.device):
    """The plain loop's twin of the Trainer's precision plugin: float32, or bfloat16 autocast for bf16-mixed."""
    if precision in ("32-true", "32"):
        return contextlib.nullcontext
    if precision == "bf16-mixed":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    raise BadValue(f"trainer.precision={precision}: the bench compares 32-true or bf16-mixed")


def bench_data(cfg, device: torch.device, k: dict[str, int], consumed: float) -> dict:
    from hydra.utils import instantiate

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


def bench_matmul(device: torch.device, k: dict[str, int]) -> dict:
    n = k["matmul_size"]
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    torch.mm(a, b)  # warm-up
    sync(device)
    rates = []
    for _ in range(k["reps"]):
        start = time.perf_counter()
        for _ in range(k["matmul_reps"]):
            torch.mm(a, b)
        sync(device)
        rates.append(2 * n**3 * k["matmul_reps"] / (time.perf_counter() - start))
    return stats(rates)


def alexlab_command() -> list[str]:
    exe = Path(sys.executable).with_name("alexlab")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "alexlab"]


def bench_sweep(cfg, k: dict[str, int]) -> dict:
    jobs = k["sweep_jobs"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("HYDRA_FULL_ERROR", None)
    startups = []
    for _ in range(k["reps"]):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import alexlab.cli"], env=env, check=True, capture_output=True)
        startups.append(time.perf_counter() - start)
    startup = statistics.median(startups)

    walls, rss = [], []
    root = Path(tempfile.mkdtemp(prefix="alexlab-bench-sweep-"))
    try:
        for rep in range(k["sweep_reps"]):
            sweep_dir = root / f"sweep{rep}"
            command = [
                *alexlab_command(),
                "-m",
                *SWEEP_ARGS,
                "seed=" + ",".join(str(s) for s in range(jobs)),
                f"hydra.sweep.dir={sweep_dir}",
                f"paths.output_root={root / 'outputs'}",
            ]
            log_path = root / f"sweep{rep}.log"
            helper = subprocess.run(
                [sys.executable, "-c", SWEEP_HELPER, str(log_path), *command],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(helper.stdout.strip().splitlines()[-1])
            walls.append(measured["wall_s"])
            rss.append(measured["maxrss"] if sys.platform == "darwin" else measured["maxrss"] * 1024)
            if measured["returncode"] != 0:
                tail = log_path.read_text().strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"bench: the sweep subprocess failed ({measured['returncode']}): {tail[0]}")
            finished = len(list(sweep_dir.rglob("metrics.json")))
            if finished != jobs:
                raise RuntimeError(f"bench: the sweep wrote {finished} metrics.json for {jobs} jobs")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_job = [(wall - startup) / jobs for wall in walls]
    return {
        "jobs": jobs,
        "command": "alexlab -m " + " ".join(SWEEP_ARGS) + " seed=" + ",".join(str(s) for s in range(jobs)),
        "startup_s": stats(startups),
        "wall_s": stats(walls),
        "per_job_s": stats(per_job),
        "peak_rss_bytes": max(rss),
        "per_job_note": "time per job, everything included (compose, build, loggers, first batch, 1 step, teardown)",
    }


def peak_rss(who: int) -> int:
    """Peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    value = resource.getrusage(who).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} cores)"


def _spread(s: dict, fmt) -> str:
    return f"{fmt(s['median'])}  [{fmt(s['min'])} - {fmt(s['max'])}]"


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def table_rows(results: dict) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows of the table: medians with [min - max] of the repetitions."""
    t, d, a, s, m = (results[key] for key in ("training", "data", "arithmetic", "sweep", "memory"))
    lay = results["layers"]

    def times(value: float) -> str:
        return f"{value:.3f}x"

    def ips(value):
        return f"{value:,.0f}"

    steps = f"{t['reps']} x {t['steps']} steps after {t['warmup']}, batch {t['batch_size']}"
    return [
        ("training", "Trainer images/s", _spread(t["trainer"]["images_per_s"], ips)),
        ("training", "plain loop images/s", _spread(t["plain"]["images_per_s"], ips)),
        (
            "training",
            "ratio Trainer / plain",
            f"{t['ratio_trainer_over_plain']:.3f}  [{t['paired_ratios']['min']:.3f} - {t['paired_ratios']['max']:.3f}]"
            f"  ({steps}, paired windows)",
        ),
        *[
            (
                "training",
                f"Trainer / {name}",
                f"{t['trainer']['images_per_s']['median'] / rate:.3f} (its {rate:,} images/s)",
            )
            for name, rate in PUBLISHED_IMAGES_PER_S.items()
            if results["batch_shape"][-1] in (224, 227)
        ],
        ("layers", f"step with lrn={lay['lrn']} / without LRN", _spread(lay["lrn_over_no_lrn"], times)),
        ("layers", "step with nn.MaxPool2d / alexlab's MaxPool", _spread(lay["stock_pooling_over_ours"], times)),
        (
            "data",
            "train loader images/s" + (" (decoded on the device)" if d.get("decode") == "device" else ""),
            _spread(d["loader_images_per_s"], ips),
        ),
        ("data", "ratio loader / Trainer", f"{d['ratio_loader_over_model']:.2f}  (>1: not input-bound)"),
        (
            "arithmetic",
            "train FLOPs per image",
            f"{_si(a['flops_per_image'], 'FLOP')} ({a['train_flops_per_mac']} x {a['macs_per_image']:,} MACs)",
        ),
        ("arithmetic", "achieved (plain loop)", _si(a["achieved_flops_per_s"], "FLOP/s")),
        (
            "arithmetic",
            f"peak ({a['matmul_size']}^2 matmul)",
            _spread(a["peak_flops_per_s"], lambda v: _si(v, "FLOP/s")),
        ),
        ("arithmetic", "share of peak", f"{100 * a['share_of_peak']:.1f}%"),
        ("sweep", "python start-up s", _spread(s["startup_s"], lambda v: f"{v:.2f}")),
        ("sweep", f"sweep of {s['jobs']} jobs, wall s", _spread(s["wall_s"], lambda v: f"{v:.2f}")),
        ("sweep", "per job s (all included)", _spread(s["per_job_s"], lambda v: f"{v:.2f}")),
        *shared_cpu_rows(results.get("shared_cpu")),
        ("memory", "host peak RSS", _mib(m["host_peak_rss_bytes"])),
        ("memory", "sweep subprocess peak RSS", _mib(m["sweep_peak_rss_bytes"])),
        ("memory", "children peak RSS (any)", _mib(m["children_peak_rss_bytes"])),
        ("memory", "GPU max allocated", _mib(m["gpu_max_memory_allocated_bytes"])),
    ]


def shared_cpu_rows(shared: dict | None) -> list[tuple[str, str, str]]:
    if not shared:
        return []
    alone, loaded = shared["alone"], shared["loaded"]
    wait = ", ".join(f"{name}={value}" for name, value in shared["omp_wait"].items() if value) or "OpenMP's default"
    return [
        ("shared CPU", "step wall s: alone, loaded", f"{alone['wall_s_per_step']['median']:.3f}, "
         f"{loaded['wall_s_per_step']['median']:.3f}  ({shared['load']} busy processes, {wait})"),
        ("shared CPU", "step CPU s: alone, loaded", f"{alone['cpu_s_per_step']['median']:.3f}, "
         f"{loaded['cpu_s_per_step']['median']:.3f}"),
        ("shared CPU", "wall loaded / alone", f"{shared['wall_loaded_over_alone']:.2f}x  (fair share: "
         f"{shared['fair_slowdown']:.2f}x, {shared['threads']} threads on {shared['cores']} cores)"),
        ("shared CPU", "CPU loaded / alone", f"{shared['cpu_loaded_over_alone']:.2f}x  (1 = waits, > 1 = burns)"),
    ]  # fmt: skip


def print_table(results: dict) -> None:
    title = (
        f"alexlab bench: {results['device']}, batch {'x'.join(map(str, results['batch_shape']))}, "
        f"{results['wall_time_s']:.0f} s"
    )
    caption = f"{results['device_name']}; timings: median [min - max] of {results['knobs']['reps']} repetitions"
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        print(title)
        print(caption)
        for section, name, value in table_rows(results):
            print(f"  {section:<11} {name:<30} {value}")
        return
    table = Table(title=escape(title), caption=escape(caption))
    for column in ("section", "measure", "value"):
        table.add_column(column)
    for section, name, value in table_rows(results):
        table.add_row(escape(section), escape(name), escape(value))
    Console(width=120).print(table)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
