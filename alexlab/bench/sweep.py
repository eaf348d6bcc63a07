"""The bench's sweep section (the time per job of a real `alexlab -m` subprocess) and what the machine is: its CPU, the
processes' peak memory."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alexlab.bench.common import stats
from alexlab.record import RECORD

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
            finished = len(list(sweep_dir.rglob(RECORD)))
            if finished != jobs:
                raise RuntimeError(f"bench: the sweep wrote {finished} run records for {jobs} jobs")
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
