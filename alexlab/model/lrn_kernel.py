"""The LRN's fused CPU kernel (lrn.c): built once per CPU with the machine's C compiler, cached, called through ctypes.

Why C and not PyTorch's own operations: the LRN is an elementwise pass over conv1's and conv2's maps, so its cost is
memory traffic. As tensor operations it is a dozen passes (a window sum of squares, a power, a product; more
backward); as one loop it reads its inputs once and writes its output once (lrn.c says how). PyTorch builds such a
loop with Inductor (torch.compile), but that costs seconds to tens of seconds per input shape in every new
process; a C file of a hundred lines compiles in under a second, once per machine, and then loads in milliseconds,
so every run has the fused loops from its first step.

How: `lrn.c` is compiled with `cc -O3 -march=native` (the instructions of this CPU: AVX2 or AVX-512, vectorised by
the compiler) into a shared library in the user's cache (`$XDG_CACHE_HOME/alexlab`, else `~/.cache/alexlab`), named
by a hash of the source, the compiler and this CPU's model and flags: a home directory shared by machines with other
CPUs gets a library for each. The library is written to a temporary name and renamed, so processes that build at
once (a sweep's jobs, DDP's) never load a half-written file. A batch is split among torch.get_num_threads() threads
(ctypes lets go of the GIL during the call); each element's arithmetic is the same whichever thread computes it, so
the result is the same bits for any split.

Where there is no C compiler, or the build or the load fails, `library()` is None (one warning, once per process)
and the LRN runs its blocked tensor passes (alexlab.model.layers), which compute the same function.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("lrn.c")
# lrn.c says why these; a compiler that refuses -march=native or -mrecip gets the portable ones
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fno-associative-math", "-mrecip", "-fPIC", "-shared")
PORTABLE_FLAGS = tuple(flag for flag in FLAGS if flag not in ("-march=native", "-mrecip"))
BUILD_TIMEOUT_S = 120
# samples per thread below which the split is not worth a thread's hand-over (tens of microseconds)
MIN_SAMPLES_PER_THREAD = 2
DTYPES = {torch.float32: ("float32", ctypes.c_float), torch.float64: ("float64", ctypes.c_double)}
log = logging.getLogger("alexlab")


def compiler() -> str | None:
    """The C compiler: $CC, else cc, gcc or clang on the PATH; None where there is none."""
    named = os.environ.get("CC")
    if named:
        return shutil.which(named) or named
    return next((path for name in ("cc", "gcc", "clang") if (path := shutil.which(name))), None)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alexlab"


def cpu_identity() -> str:
    """This CPU's model and instruction-set flags (what -march=native compiles for), from /proc/cpuinfo on Linux."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in wanted]
    return "\n".join(dict.fromkeys(lines))  # the first processor's lines (the others repeat them)


def library_path(cc: str) -> Path:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), cc, version, " ".join(FLAGS), cpu_identity()]).encode())
    return cache_dir() / f"lrn-{key.hexdigest()[:16]}.so"


def build(cc: str, target: Path) -> None:
    """Compiles lrn.c into `target` (atomically: a temporary file in the same directory, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        built = Path(work) / target.name
        errors = ""
        for flags in (FLAGS, PORTABLE_FLAGS):
            result = subprocess.run([cc, *flags, str(SOURCE), "-o", str(built), "-lm"], capture_output=True,
                                    text=True, timeout=BUILD_TIMEOUT_S)  # fmt: skip
            if result.returncode == 0:
                os.replace(built, target)
                return
            errors = result.stderr.strip()
        raise OSError(errors.splitlines()[0] if errors else f"{cc} failed")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built kernel, loaded (built first where this CPU has none cached); None where it cannot be (one warning)."""
    cc = compiler()
    if cc is None:
        log.warning("LRN: no C compiler (cc, gcc or clang; or $CC) to build its fused kernel: the slower tensor passes")
        return None
    try:
        path = library_path(cc)
        if not path.exists():
            build(cc, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("LRN: its fused kernel could not be built or loaded (%s): the slower tensor passes", error)
        return None
    for name, c_type in DTYPES.values():
        pointer = ctypes.POINTER(c_type)
        sizes = [ctypes.c_int64] * 4
        getattr(lib, f"lrn_forward_{name}").argtypes = [pointer, pointer, *sizes, c_type, c_type, c_type]
        getattr(lib, f"lrn_backward_{name}").argtypes = [pointer, pointer, pointer, *sizes, c_type, c_type, c_type]
        for kind in ("forward", "backward"):
            getattr(lib, f"lrn_{kind}_{name}").restype = ctypes.c_int
    return lib


_disabled = threading.local()


@contextlib.contextmanager
def disabled():
    """The LRN's tensor passes instead of the kernel, in this thread, inside the block: for the bench, which times
    both side by side, and for the tests of the fallback."""
    before, _disabled.on = getattr(_disabled, "on", False), True
    try:
        yield
    finally:
        _disabled.on = before


def available(x: torch.Tensor) -> bool:
    """Whether the kernel takes x: a CPU tensor of float32 or float64, outside torch.compile's tracing (which fuses
    the tensor passes itself) and `disabled`, on a machine where the kernel builds."""
    if getattr(_disabled, "on", False) or x.device.type != "cpu" or x.dtype not in DTYPES:
        return False
    return not torch.compiler.is_compiling() and library() is not None


@functools.cache
def _pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="alexlab-lrn")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of its parent's threads


def _run(kind: str, tensors: list[torch.Tensor], size: int, alpha: float, beta: float, k: float) -> None:
    """lrn_<kind>_<dtype> over the samples of tensors (each [samples, channels, hw], contiguous; the last written),
    split among torch.get_num_threads() threads."""
    samples, channels, hw = tensors[0].shape
    name, c_type = DTYPES[tensors[0].dtype]
    function = getattr(library(), f"lrn_{kind}_{name}")
    pointer = ctypes.POINTER(c_type)
    step = channels * hw * tensors[0].element_size()
    constants = (size, c_type(alpha / size), c_type(beta), c_type(k))

    def call(start: int, stop: int) -> int:
        pointers = [ctypes.cast(t.data_ptr() + start * step, pointer) for t in tensors]
        return function(*pointers, stop - start, channels, hw, *constants)

    threads = max(1, min(torch.get_num_threads(), samples // MIN_SAMPLES_PER_THREAD))
    bounds = [samples * i // threads for i in range(threads + 1)]
    failed = call(0, samples) if threads == 1 else any(_pool(threads).map(call, bounds[:-1], bounds[1:]))
    if failed:
        raise MemoryError(f"LRN: the fused kernel's {kind} could not allocate its scratch rows")


def forward(maps: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b = a * (k + alpha / size * window sum of a^2)^-beta over the channels of maps [samples, channels, hw]."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    _run("forward", [maps, out], size, alpha, beta, k)
    return out


def backward(maps: torch.Tensor, grad: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """The gradient of `forward` with respect to maps, given the gradient of its output."""
    maps, grad = maps.contiguous(), grad.contiguous()
    grad_in = torch.empty_like(maps)
    _run("backward", [maps, grad, grad_in], size, alpha, beta, k)
    return grad_in
