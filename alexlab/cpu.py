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
