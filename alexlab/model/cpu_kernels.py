"""alexlab's CPU kernels (cpu_kernels.c): LRN, max-pooling and the stem's convolution, built once per CPU with the
machine's C compiler, cached, called through ctypes.

Why C and not PyTorch's own operations: the LRN is an elementwise pass over conv1's and conv2's maps, so its cost is
memory traffic. As tensor operations it is a dozen passes (a window sum of squares, a power, a product; more
backward); as one loop it reads its inputs once and writes its output once. PyTorch builds such a loop with Inductor
(torch.compile), but that costs seconds to tens of seconds per input shape in every new process. And PyTorch's
max-pooling of NCHW maps on a CPU spends tens of nanoseconds an output on index arithmetic (a quarter of the
quickstart's step on some CPUs), where a window is nine loads and compares in the cache; and oneDNN runs a
convolution of a one-channel image at a tenth of the machine's rate. A C file of a few hundred
lines compiles in about a second, once per machine, and then loads in milliseconds, so every run has the fast loops
from its first step.

How: `cpu_kernels.c` is compiled with `cc -O3 -march=native` (the instructions of this CPU: AVX2 or AVX-512,
vectorised by the compiler) into a shared library in the user's cache (`$XDG_CACHE_HOME/alexlab`, else
`~/.cache/alexlab`), named by a hash of the source, the compiler and this CPU's model and flags: a home directory
shared by machines with other CPUs gets a library for each. The library is written to a temporary name and renamed,
so processes that build at once (a sweep's jobs, DDP's) never load a half-written file. A batch is split among
torch.get_num_threads() threads (ctypes lets go of the GIL during the call); each element's arithmetic is the same
whichever thread computes it, so the result is the same bits for any split (deterministic).

Where there is no C compiler, or the build or the load fails, `library()` is None (one warning, once per process)
and the layers run their tensor passes (alexlab.model.layers), which compute the same functions.
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

SOURCE = Path(__file__).with_name("cpu_kernels.c")
# cpu_kernels.c says why these; a compiler that refuses -march=native or -mrecip gets the portable ones. Compiled
# and linked in two steps: -ffast-math on the link line would add crtfastmath.o, whose constructor sets the CPU to
# flush subnormal numbers to zero for the whole process once the library loads (every PyTorch operation after it,
# in the threads started after it only)
FLAGS = ("-O3", "-march=native", "-ffast-math", "-fno-associative-math", "-mrecip", "-fPIC")
PORTABLE_FLAGS = tuple(flag for flag in FLAGS if flag not in ("-march=native", "-mrecip"))
BUILD_TIMEOUT_S = 120
# samples (planes) per thread below which the split is not worth a thread's hand-over (tens of microseconds)
MIN_PER_THREAD = 2
DTYPES = {torch.float32: ("float32", ctypes.c_float), torch.float64: ("float64", ctypes.c_double)}
log = logging.getLogger("alexlab")
WHAT = "LRN, max-pooling and the stem"  # what the kernels compute, as the warnings name it


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
    return cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"


def build(cc: str, target: Path) -> None:
    """Compiles cpu_kernels.c into `target` (atomically: a temporary file in the same directory, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        built, objects = Path(work) / target.name, Path(work) / "kernels.o"
        errors = ""
        for flags in (FLAGS, PORTABLE_FLAGS):
            steps = (
                [cc, *flags, "-c", str(SOURCE), "-o", str(objects)],
                [cc, "-shared", str(objects), "-o", str(built), "-lm"],
            )
            for step in steps:
                result = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
                if result.returncode:
                    break
            if result.returncode == 0:
                os.replace(built, target)
                return
            errors = result.stderr.strip()
        raise OSError(errors.splitlines()[0] if errors else f"{cc} failed")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built kernels, loaded (built first where this CPU has none cached); None where they cannot be (one
    warning)."""
    cc = compiler()
    if cc is None:
        log.warning(f"{WHAT}: no C compiler (cc, gcc or clang; or $CC) to build their CPU kernels: the slower "
                    "tensor passes")  # fmt: skip
        return None
    try:
        path = library_path(cc)
        if not path.exists():
            build(cc, path)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a damaged file in the cache (a disk that filled up, say): built again, once
            build(cc, path)
            lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:  # RuntimeError: no home directory
        log.warning(f"{WHAT}: their CPU kernels could not be built or loaded (%s): the slower tensor passes", error)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    for name, c_type in DTYPES.values():
        arguments = {  # each function's pointers, then its count of samples or planes (split among threads), the rest
            "lrn_forward": [pointer] * 2 + [size] * 4 + [c_type] * 3,
            "lrn_backward": [pointer] * 3 + [size] * 4 + [c_type] * 3,
            "max_pool_forward": [pointer] * 3 + [size] * 7,
            "max_pool_backward": [pointer] * 3 + [size] * 7,
            "stem_forward": [pointer] * 4 + [size] * 9,
            "stem_weight_grad": [pointer] * 4 + [size] * 11,
        }
        for function, types in arguments.items():
            getattr(lib, f"{function}_{name}").argtypes = types
            getattr(lib, f"{function}_{name}").restype = ctypes.c_int
    return lib


_disabled = threading.local()


@contextlib.contextmanager
def disabled():
    """The layers' tensor passes instead of the kernels, in this thread, inside the block: for the bench, which times
    both side by side, and for the tests of the fallback."""
    before, _disabled.on = getattr(_disabled, "on", False), True
    try:
        yield
    finally:
        _disabled.on = before


def available(x: torch.Tensor) -> bool:
    """Whether the kernels take x: a CPU tensor of float32 or float64, outside torch.compile's tracing (which fuses
    the tensor passes itself), torch.func's transforms (vmap, grad: ctypes calls they cannot see into) and
    `disabled`, on a machine where the kernels build."""
    if getattr(_disabled, "on", False) or x.device.type != "cpu" or x.dtype not in DTYPES:
        return False
    if getattr(torch._C, "_are_functorch_transforms_active", lambda: False)():  # torch.func: its own operations
        return False
    return not torch.compiler.is_compiling() and library() is not None


@functools.cache
def _pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="alexlab-kernels")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of its parent's threads


def _parallel(call, count: int) -> bool:
    """call(start, stop) over `count` items split among torch.get_num_threads() threads (at least MIN_PER_THREAD
    items each); whether any call failed (returned non-zero)."""
    threads = max(1, min(torch.get_num_threads(), count // MIN_PER_THREAD))
    bounds = [count * i // threads for i in range(threads + 1)]
    if threads == 1:
        return bool(call(0, count))
    return any(list(_pool(threads).map(call, bounds[:-1], bounds[1:])))  # every part ended before any is judged


def _run(function: str, tensors: list[torch.Tensor], *rest, shared: tuple = ()) -> None:
    """The C function `function`_<dtype> on tensors (contiguous, the same length along their first dimension, over
    which the work is split among threads; the outputs last), the `shared` tensors (whole, to every thread; None
    for NULL) and the rest of its arguments."""
    count = tensors[0].shape[0]
    call_c = getattr(library(), f"{function}_{DTYPES[tensors[0].dtype][0]}")
    steps = [t[0].numel() * t.element_size() if count else 0 for t in tensors]
    whole = [None if t is None else t.data_ptr() for t in shared]

    def call(start: int, stop: int) -> int:
        pointers = [t.data_ptr() + start * step for t, step in zip(tensors, steps, strict=True)]
        return call_c(*pointers, *whole, stop - start, *rest)

    if _parallel(call, count):
        raise MemoryError(f"{function}: the CPU kernel could not allocate its scratch rows")


def lrn_forward(maps: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b = a * (k + alpha / size * window sum of a^2)^-beta over the channels of maps [samples, channels, hw]."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    _run("lrn_forward", [maps, out], *maps.shape[1:], size, alpha / size, beta, k)
    return out


def lrn_backward(maps: torch.Tensor, grad: torch.Tensor, size: int, alpha: float, beta: float, k: float):
    """The gradient of `lrn_forward` with respect to maps, given the gradient of its output."""
    maps, grad = maps.contiguous(), grad.contiguous()
    grad_in = torch.empty_like(maps)
    _run("lrn_backward", [maps, grad, grad_in], *maps.shape[1:], size, alpha / size, beta, k)
    return grad_in


def max_pool_forward(x: torch.Tensor, window: int, stride: int, out_size: tuple[int, int]):
    """The max-pooling of x [N, C, H, W] (window x window every `stride`, no padding) to out_size (at most the
    windows that fit), and where each output's maximum lies in its window (uint8, ky * window + kx)."""
    n, c, height, width = x.shape
    out_height, out_width = out_size
    planes = x.contiguous().view(n * c, height, width)
    out = torch.empty(n * c, out_height, out_width, dtype=x.dtype)
    where = torch.empty(n * c, out_height, out_width, dtype=torch.uint8)
    _run("max_pool_forward", [planes, out, where], height, width, out_height, out_width, window, stride)
    return out.view(n, c, out_height, out_width), where


def max_pool_backward(grad: torch.Tensor, where: torch.Tensor, shape: torch.Size, window: int, stride: int):
    """The gradient of max_pool_forward's input of `shape`: each output's gradient added where its maximum lay."""
    n, c, height, width = shape
    out_height, out_width = grad.shape[-2:]
    grad_in = torch.empty(n * c, height, width, dtype=grad.dtype)
    planes = grad.contiguous().view(n * c, out_height, out_width)
    _run("max_pool_backward", [planes, where, grad_in], height, width, out_height, out_width, window, stride)
    return grad_in.view(shape)


def stem_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """nn.Conv2d's output for x [N, C_in, H, W] and a square weight [C_out, C_in, k, k], stride 1, zero padding."""
    n, in_channels, height, width = x.shape
    out_channels, _, kernel, _ = weight.shape
    out_height, out_width = height + 2 * padding - kernel + 1, width + 2 * padding - kernel + 1
    out = torch.empty(n, out_channels, out_height, out_width, dtype=x.dtype)
    sizes = (in_channels, height, width, out_channels, kernel, padding, out_height, out_width)
    shared = (weight.contiguous(), None if bias is None else bias.contiguous())
    _run("stem_forward", [x.contiguous(), out], *sizes, shared=shared)
    return out


def stem_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: int, padding: int, with_bias: bool):
    """The gradients of stem_forward's weight and bias (None without one) given its output's gradient, split among
    threads by output channel (each channel's sums in one fixed order: the same bits for any thread count)."""
    x, grad = x.contiguous(), grad.contiguous()
    n, in_channels, height, width = x.shape
    out_channels, out_height, out_width = grad.shape[1:]
    grad_weight = torch.empty(out_channels, in_channels, kernel, kernel, dtype=x.dtype)
    grad_bias = torch.empty(out_channels, dtype=x.dtype) if with_bias else None
    call_c = getattr(library(), f"stem_weight_grad_{DTYPES[x.dtype][0]}")
    sizes = (n, in_channels, height, width, out_channels, kernel, padding, out_height, out_width)
    step = grad_weight[0].numel() * grad_weight.element_size()

    def call(start: int, stop: int) -> int:
        bias_pointer = None if grad_bias is None else grad_bias.data_ptr() + start * grad_bias.element_size()
        into = grad_weight.data_ptr() + start * step
        return call_c(x.data_ptr(), grad.data_ptr(), into, bias_pointer, *sizes, start, stop)

    if _parallel(call, out_channels):
        raise MemoryError("stem_weight_grad: the CPU kernel could not allocate its partial sums")
    return grad_weight, grad_bias
