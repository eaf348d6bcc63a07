"""`alexlab bench`'s run: the knobs, the config, the device, every section in turn, bench.json."""

from __future__ import annotations

import json
import resource
import time
from datetime import datetime
from pathlib import Path

import torch

from alexlab.bench.common import HEAVY_STEP_MACS, TRAIN_FLOPS_PER_MAC, autocast_for, fixed_batch, pick_device
from alexlab.bench.data import bench_arithmetic, bench_data
from alexlab.bench.layers import bench_layers, bench_shared_cpu
from alexlab.bench.study import study_cost
from alexlab.bench.sweep import bench_sweep, peak_rss
from alexlab.bench.table import print_table
from alexlab.bench.training import bench_training, plain_loop
from alexlab.cpu import cpu_line, describe_cpu
from alexlab.errors import BadValue

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
# bench.study=DIR: a study's sweep directory, whose runs' phase times the study section reads (alexlab.bench.study)
STUDY = "study"


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
        if not sep or key not in DEFAULTS and key != STUDY:
            knobs_named = ", ".join([*(f"bench.{k}=N" for k in DEFAULTS), f"bench.{STUDY}=DIR"])
            raise BadValue(f"{arg}: not a bench knob; the knobs: {knobs_named}")
        knobs[key] = value
    return overrides, knobs


def resolve_knobs(knobs: dict[str, str], heavy: bool) -> dict[str, int]:
    values = {**DEFAULTS, **(HEAVY_DEFAULTS if heavy else {})}
    for key, text in knobs.items():
        if key == STUDY:
            continue
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

    from alexlab.config_groups import CONFIG_PACKAGE

    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    run_dir = Path(cfg.paths.output_root) / "bench" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    cfg.paths.run_dir = str(run_dir)  # ${hydra:runtime.output_dir} does not resolve outside @hydra.main
    return cfg


def run_bench(cfg, knobs: dict[str, str], overrides: list[str]) -> dict:
    import lightning as L
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
    study_dir = knobs.get(STUDY)
    if study_dir is not None and (not study_dir or not Path(study_dir).is_dir()):  # before minutes of measuring
        raise BadValue(f"bench.study={study_dir}: not a directory; give a study's sweep directory")
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    training = bench_training(cfg, device, k)
    layers = bench_layers(cfg, device, k)
    data = bench_data(cfg, device, k, training["trainer"]["images_per_s"]["median"])
    flops_per_image = macs * TRAIN_FLOPS_PER_MAC
    L.seed_everything(int(cfg.seed), verbose=False)
    steps = plain_loop(instantiate(cfg.model), instantiate(cfg.optimizer), *fixed_batch(cfg, device), device, cfg)
    arithmetic = {
        "macs_per_image": macs,
        "train_flops_per_mac": TRAIN_FLOPS_PER_MAC,
        "flops_per_image": flops_per_image,
        "matmul_size": k["matmul_size"],
        **bench_arithmetic(steps, flops_per_image * batch_size, device, k),
    }
    sweep = bench_sweep(cfg, k)
    shared = bench_shared_cpu(cfg, device, k) if k["load"] else None
    step_s = batch_size / training["trainer"]["images_per_s"]["median"]
    study = study_cost(Path(study_dir), step_s) if study_dir is not None else None
    memory = {
        "host_peak_rss_bytes": peak_rss(resource.RUSAGE_SELF),
        "children_peak_rss_bytes": peak_rss(resource.RUSAGE_CHILDREN),  # the largest: loader worker or sweep
        "sweep_peak_rss_bytes": sweep["peak_rss_bytes"],
        "gpu_max_memory_allocated_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    }
    cpu = describe_cpu()
    results = {
        "run_dir": str(run_dir),
        "overrides": overrides,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_line(cpu),
        "cpu": cpu,  # on a GPU too: the host's CPU loads the data
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
        "study": study,
        "memory": memory,
        "versions": {"torch": torch.__version__},
    }
    results["wall_time_s"] = time.perf_counter() - started
    (run_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
