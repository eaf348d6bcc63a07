"""How an alexlab process uses the CPU: set once, at the start of `alexlab` (cli.main), before torch is imported.

Two settings, each for a machine whose cores other work shares (docs/measurements.md, A shared CPU, has the figures):

- **OpenMP threads wait briefly, then sleep.** PyTorch's intra-op threads (GNU OpenMP, also under MKL and oneDNN)
  spin at the end of every parallel region for about 300,000 iterations before they sleep. On a machine of its
  own that costs nothing; on a shared one it burns the cores other work is waiting for, and a spinning thread
  waits for a partner the kernel has descheduled: beside busy processes the step then takes several times its
  CPU time. With a short spin (GOMP_SPINCOUNT=10000, KMP_BLOCKTIME=1 for LLVM's and Intel's OpenMP) it takes the
  CPU time it needs alone: the run waits for cores instead of burning them; idle, the step is as fast either way.
  A user's own OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME is kept. `alexlab bench experiment=quickstart
  bench.load=4` measures it (bench_shared_cpu).
- **Freed memory is reused, not given back to the kernel.** glibc's malloc returns large blocks (above 128 KiB,
  adjusted up to 32 MiB) to the kernel with munmap and the heap's top with trim; the next step's tensors of the
  same sizes then come back as fresh pages, each zeroed by a page fault: thousands of faults per training step,
  a tenth of its time. Kept in the heap (M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD 2 GiB; PyTorch's CPU tuning
  guide recommends jemalloc or tcmalloc for the same reason), the step has under a hundred. The process keeps its
  peak heap until it ends. Other C libraries than glibc (macOS, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

# OpenMP's spin before a waiting thread sleeps: GNU (iterations) and LLVM/Intel (milliseconds)
SHORT_SPIN = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}
WAIT_SETTINGS = ("OMP_WAIT_POLICY", *SHORT_SPIN)
# glibc mallopt parameters (malloc.h) and alexlab's values
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_IN_HEAP = {M_MMAP_THRESHOLD: 2**30, M_TRIM_THRESHOLD: 2**31 - 1}  # (C ints)


def configure() -> None:
    """Both settings (see the module docstring). The OpenMP one only takes effect before torch is imported."""
    if "torch" not in sys.modules and not any(name in os.environ for name in WAIT_SETTINGS):
        os.environ.update(SHORT_SPIN)  # inherited by DataLoader workers and DDP's processes
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """mallopt the two thresholds on glibc; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
            return False
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return all(libc.mallopt(parameter, value) == 1 for parameter, value in KEEP_IN_HEAP.items())
    except OSError:
        return False


# The instruction sets that decide how fast a float32 or bfloat16 step runs (oneDNN's and ATen's kernels pick by them),
# as /proc/cpuinfo spells them: a figure is only ever compared with figures of a CPU with the same ones
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16")


def describe_cpu(cpuinfo: str | None = None) -> dict:
    """What the CPU is, for a measurement to say where it ran: its model name, its cores (as this process sees
    them), which of VECTOR_FLAGS it has, and the kernels PyTorch picks on it (torch.backends.cpu, where torch is
    imported). `cpuinfo`: /proc/cpuinfo's text (read where not given; empty off Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}  # the last processor's, as every one's
    flags = set(fields.get("flags", "").split())
    torch = sys.modules.get("torch")
    return {
        "model": fields.get("model name", "CPU"),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": [flag for flag in VECTOR_FLAGS if flag in flags],
        "torch_kernels": torch.backends.cpu.get_cpu_capability() if torch is not None else None,
    }


def cpu_line(cpu: dict) -> str:
    """describe_cpu in one line: '<model name> (2 cores; avx2 fma; torch kernels AVX2)'."""
    kernels = f"; torch kernels {cpu['torch_kernels']}" if cpu.get("torch_kernels") else ""
    return f"{cpu['model']} ({cpu['cores']} cores; {' '.join(cpu['flags']) or 'no AVX2'}{kernels})"
