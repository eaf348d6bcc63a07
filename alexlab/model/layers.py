"""The two layers of AlexNet that PyTorch's own modules make slow on a CPU: LRN and overlapping max-pooling.

Both compute exactly what `nn.LocalResponseNorm` and `nn.MaxPool2d` compute (tests compare values and gradients);
what differs is how: `nn.LocalResponseNorm` is a dozen passes over conv1's output, each through memory, and
`nn.MaxPool2d`'s NCHW kernel is slow on some CPUs (see the classes below). `alexlab bench` reports the step with
`lrn=paper` against `lrn=off`, and with `nn.MaxPool2d` against `MaxPool`, side by side; what it measured:
docs/measurements.md (LRN, Max-pooling).
"""

from __future__ import annotations

import time
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

import alexlab.model.cpu_kernels as cpu_kernels
from alexlab.errors import BadValue

# On a CPU the LRN works through the batch in blocks of whole samples of about this many bytes of maps, so that the
# dozen passes over one block find it in the cache (2 MiB: about the L2 of two cores) instead of streaming conv1's
# whole output (51 MB in the quickstart) from memory a dozen times. 2 MiB was the fastest of 0.5, 2 and 4 MiB and
# the whole batch at once (docs/measurements.md, LRN).
BLOCK_BYTES = 1 << 21


def _blocks(maps: torch.Tensor) -> list[slice]:
    """Slices of maps [B, C, HW] along B: one on a GPU (one kernel per pass is what it is good at), on a CPU
    blocks of about BLOCK_BYTES."""
    per_block = maps.shape[0]
    if maps.device.type == "cpu":
        per_block = max(1, BLOCK_BYTES // max(1, maps[0].numel() * maps.element_size()))
    return [slice(start, start + per_block) for start in range(0, maps.shape[0], per_block)]


def _neighbours(channels: int, size: int, front: int):
    """(into, source) channel slices, one pair per neighbour of a window of `size` channels c - front .. c - front +
    size - 1: adding maps[:, source] into maps[:, into] adds each channel's neighbour at that offset (those that
    exist) to it. The window's own channel (offset 0) is left to the caller."""
    for offset in range(max(-front, 1 - channels), min(size - front, channels)):
        if offset > 0:  # channel c + offset into c
            yield slice(0, channels - offset), slice(offset, channels)
        elif offset < 0:
            yield slice(-offset, channels), slice(0, channels + offset)


def _window_of_squares(maps: torch.Tensor, size: int, front: int, scale: float, k: float, out: torch.Tensor):
    """out = k + scale * sum of a_j^2 over the `size` channels j = c - front .. c - front + size - 1 (those that
    exist) of maps [B, C, HW], for every channel c: one addcmul over all channels, then one per neighbour on the
    channel slices it overlaps. Five passes that read the maps and never write their squares."""
    torch.addcmul(torch.tensor(k, dtype=maps.dtype, device=maps.device), maps, maps, value=scale, out=out)
    for into, source in _neighbours(maps.shape[1], size, front):
        out[:, into].addcmul_(maps[:, source], maps[:, source], value=scale)
    return out


class _LocalResponseNorm(torch.autograd.Function):
    """b_c = a_c * d_c^-beta with d_c = k + alpha / size * sum of a_j^2 over the `size` channels j around c, inside
    each tower (the maps are viewed as [N * towers, C / towers, HW], so no window crosses a tower). cuda-convnet's
    way: the backward is the closed form

        da_i = g_i d_i^-beta - 2 alpha beta / size * a_i * sum over the c whose window holds i of g_c a_c d_c^-beta-1

    i.e. one more window sum (over the mirrored window) instead of autograd's trace through squares, pads, sums and
    a pow. The LRN is a memory-bound pass over conv1's and conv2's output, so how often it goes through memory is
    its cost:

    - on a CPU, the fused kernel (alexlab.model.cpu_kernels): one read and one write forward, two reads and
      one write backward, d and d^-beta recomputed from the saved input instead of kept; every step from the first.
    - elsewhere (a GPU, bfloat16, torch.compile's tracing, a machine where the kernel cannot build), tensor passes:
      each window sum a fused multiply-add per neighbour on the channel slices it overlaps, d^-0.75 (the paper's
      beta) as rsqrt(d^1.5) from a sqrt and an rsqrt, without a general pow (exp and log: several times slower); on
      a CPU block by block in the cache (BLOCK_BYTES), on a GPU over the whole batch (torch.compile, `compile=true`,
      fuses them there). Of the tensor ways tried (nn.LocalResponseNorm, shifted slices with a pow, window sums as
      a banded [C, C] matrix product, slices with fused multiply-adds), the last was the fastest.
    What each costs beside the step without LRN: docs/measurements.md, LRN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int):
        n, c, h, w = x.shape
        maps = x.reshape(n * towers, c // towers, h * w)  # each tower's maps apart (a view of NCHW)
        ctx.size, ctx.alpha, ctx.beta, ctx.k, ctx.towers = size, alpha, beta, k, towers
        ctx.fused = cpu_kernels.available(maps)
        if ctx.fused:
            ctx.save_for_backward(x)
            return cpu_kernels.lrn_forward(maps, size, alpha, beta, k).view(n, c, h, w)
        d, power, out = torch.empty_like(maps), torch.empty_like(maps), torch.empty_like(maps)
        for b in _blocks(maps):
            _window_of_squares(maps[b], size, size // 2, alpha / size, k, out=d[b])
            if beta == 0.75:  # d^-0.75 = (d^1.5)^-0.5
                torch.sqrt(d[b], out=power[b]).mul_(d[b]).rsqrt_()
            else:
                torch.pow(d[b], -beta, out=power[b])
            torch.mul(maps[b], power[b], out=out[b])
        ctx.save_for_backward(x, d, power)
        return out.view(n, c, h, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        size, alpha, beta, towers = ctx.size, ctx.alpha, ctx.beta, ctx.towers
        x = ctx.saved_tensors[0]
        if torch.is_grad_enabled():  # create_graph=True: a gradient that can itself be differentiated
            lrn = lambda m: F.local_response_norm(m, size, alpha, beta, ctx.k)
            return _differentiable_grad(x, grad, towers, lrn), *[None] * 5
        n, c, h, w = x.shape
        maps = x.reshape(n * towers, c // towers, h * w)
        shape, grad = grad.shape, grad.reshape(maps.shape)
        if ctx.fused:
            return cpu_kernels.lrn_backward(maps, grad, size, alpha, beta, ctx.k).view(shape), *[None] * 5
        _, d, power = ctx.saved_tensors
        grad_in = torch.empty_like(maps)
        scale = -2.0 * alpha * beta / size
        for b in _blocks(maps):
            a, into_grad = maps[b], grad_in[b]
            torch.mul(grad[b], power[b], out=into_grad)  # g_i d_i^-beta, the first term
            ratio = (into_grad * a).div_(d[b])  # g_c a_c d_c^-beta-1
            # channel i is in the windows of c = i - (size - 1) // 2 .. i + size // 2 (the mirrored window): a fused
            # multiply-add of a_i and each of those ratio_c straight into the gradient, its own channel first (one
            # pass fewer and no window-sum buffer than summing the window first)
            into_grad.addcmul_(a, ratio, value=scale)
            for into, source in _neighbours(a.shape[1], size, (size - 1) // 2):
                into_grad[:, into].addcmul_(a[:, into], ratio[:, source], value=scale)
        return grad_in.view(shape), *[None] * 5


def _differentiable_grad(x: torch.Tensor, grad: torch.Tensor, towers: int, function):
    """The gradient of function over each tower's maps of x, as autograd derives it from PyTorch's own operations:
    for a double backward (gradient penalties, Hessian-vector products), where the closed-form passes would give a
    gradient that is not itself differentiable."""
    n, c, h, w = x.shape
    with torch.enable_grad():
        out = function(x.reshape(n * towers, c // towers, h * w))
        (grad_in,) = torch.autograd.grad(out, x, grad.reshape(out.shape), create_graph=True)
    return grad_in


def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int = 1):
    """nn.LocalResponseNorm(size, alpha, beta, k) applied inside each of `towers` channel groups of x [N, C, H, W]."""
    if x.shape[1] % towers:
        raise BadValue(f"LRN over {towers} towers needs a channel count divisible by {towers}, got {x.shape[1]}")
    return _LocalResponseNorm.apply(x.contiguous(), size, alpha, beta, k, towers)


def lrn_strength(x: torch.Tensor, size: int, alpha: float, k: float, towers: int = 1) -> torch.Tensor:
    """How far the LRN of x [N, C, H, W] is from dividing by the constant k^beta: the mean over every map position of
    alpha / size * (the sum of a^2 over the `size` maps around it, inside its tower) / k. At 0.01 the divisor moves by
    under 1% whatever the input (a constant factor, which the next layer's weights absorb); the paper's constants
    (k=2, alpha=1e-4 on the sum of 5 squares) reach 1 for activations around 100, as on its "centered raw RGB values"
    (0-255 minus the mean, section 2)."""
    n, c, h, w = x.shape
    maps = x.detach().reshape(n * towers, c // towers, h * w)
    squares = _window_of_squares(maps, size, size // 2, alpha / size, 0.0, out=torch.empty_like(maps))
    return squares.mean() / k


class TowerLRN(nn.Module):
    """Local response normalisation inside each of `towers` channel groups (one group = plain LRN): the function of
    nn.LocalResponseNorm(size, alpha, beta, k), b_c = a_c / (k + alpha/size * sum of a^2 over the `size` maps
    around c)^beta, computed by `local_response_norm` (see _LocalResponseNorm for how and why)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, towers: int = 1):
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.towers = size, alpha, beta, k, towers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.towers)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, towers={self.towers}"


class _StemConv(torch.autograd.Function):
    """The stem's convolution by the CPU kernel (alexlab.model.cpu_kernels): the forward keeps its input, the
    backward gives the weight's and the bias's gradients (the input, an image, needs none)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int):
        ctx.save_for_backward(x, weight, bias)
        ctx.padding = padding
        return cpu_kernels.stem_forward(x, weight, bias, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, bias = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: nn.Conv2d's own, differentiable gradients
            with torch.enable_grad():
                wanted = [t for t in (weight, bias) if t is not None]
                out = F.conv2d(x, weight, bias, padding=ctx.padding)
                grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return None, next(grads), next(grads) if bias is not None else None, None
        grad_weight, grad_bias = cpu_kernels.stem_weight_grad(x, grad, weight.shape[-1], ctx.padding, bias is not None)
        return None, grad_weight, grad_bias, None


class StemConv(nn.Conv2d):
    """nn.Conv2d for the network's first layer, faster on a CPU. Its input is the image: a few channels, which
    oneDNN's kernels (built for many) run at a fraction of the machine's rate. Where the layer is what a stem is
    (stride 1, a square kernel of up to 11, symmetric zero padding, one group, at most 4 input channels) and its
    input needs no gradient, it runs the CPU kernel (alexlab.model.cpu_kernels): nn.Conv2d's function to float
    rounding, deterministic for any thread count. Anything else, and where the kernel cannot build, is
    nn.Conv2d's own. The paper's stem (11x11 every 4 pixels) is not stride 1: nn.Conv2d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._kernel_applies(x):
            return _StemConv.apply(x, self.weight, self.bias, _pair(self.padding)[0])
        return super().forward(x)

    def _kernel_applies(self, x: torch.Tensor) -> bool:
        (kernel, other), padding = self.kernel_size, self.padding
        return (
            x.dim() == 4
            and x.shape[1] == self.in_channels  # else nn.Conv2d's error
            and min(x.shape[-2:]) > 0
            and not x.requires_grad
            and kernel == other <= 11
            and self.in_channels <= 4
            and self.groups == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and isinstance(padding, tuple)
            and padding[0] == padding[1]
            and min(x.shape[-2:]) + 2 * padding[0] >= kernel
            and self.weight.dtype == x.dtype
            and self.weight.device == x.device
            and cpu_kernels.available(x)  # a CPU tensor, before the CPU's autocast is asked
            and not torch.is_autocast_enabled("cpu")  # autocast's dtype is nn.Conv2d's to choose
            and bool(torch.isfinite(x).all())  # a NaN or inf pixel reaches only its own taps, as nn.Conv2d's
        )


class _MaxPool(torch.autograd.Function):
    """Max-pooling by the CPU kernel (alexlab.model.cpu_kernels): the forward keeps where each maximum lay (a byte
    an output), the backward adds each output's gradient there."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, window: int, stride: int, out_size: tuple[int, int]):
        out, where = cpu_kernels.max_pool_forward(x, window, stride, out_size)
        ctx.save_for_backward(where)
        ctx.shape, ctx.window, ctx.stride = x.shape, window, stride
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (where,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the same sums as a scatter, differentiable in grad
            n, c, height, width = ctx.shape
            rows, columns = torch.meshgrid(*(torch.arange(s) * ctx.stride for s in where.shape[-2:]), indexing="ij")
            place = where.long()
            flat = (rows + place // ctx.window) * width + columns + place % ctx.window
            sums = grad.new_zeros(n * c, height * width).scatter_add(1, flat.view(n * c, -1), grad.reshape(n * c, -1))
            return sums.view(ctx.shape), None, None, None
        return cpu_kernels.max_pool_backward(grad, where, ctx.shape, ctx.window, ctx.stride), None, None, None


class MaxPool(nn.MaxPool2d):
    """nn.MaxPool2d, faster on a CPU. There, a square window without padding or dilation runs the CPU kernel
    (alexlab.model.cpu_kernels): the same values, and each window's gradient to its first maximum in row-major order
    as PyTorch routes it (a NaN wins, as in PyTorch), deterministic. Where the kernel cannot build (or does not
    apply), oneDNN's pooling where that is the faster of oneDNN's and PyTorch's: which one is depends on the CPU
    (on some PyTorch's NCHW kernel took a third of the quickstart's training step and oneDNN's, with the
    conversions to its layout and back, a fifth of that; on others oneDNN's was twice as slow; docs/measurements.md,
    Max-pooling). So, as cudnn.benchmark does for convolutions, the first call for each input shape times both
    (best of three, with the backward when the input needs a gradient) and that shape keeps the faster one for the
    rest of the process (`onednn_faster`); overlapping windows may add their gradients in another order there, so
    equal to float rounding. On a GPU (cuDNN), in bf16, under torch.compile, or with deterministic algorithms
    without the kernel (deterministic=true: a choice by timing could differ between two runs, e.g. a run and its
    resumed second half, and so could their float rounding), it is nn.MaxPool2d."""

    # (input shape, window, stride, with backward) -> whether oneDNN's pooling was the faster: timed once per process
    onednn_faster: ClassVar[dict[tuple, bool]] = {}

    def __init__(self, *args, maps_of: tuple[int, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # (window, stride) of another pooling whose map size this one keeps: its last rows and columns are left out
        # where it would give more (see AlexNet's pooling)
        self.maps_of = maps_of

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self._kept_size(x)
        if self._kernel_applies(x):
            return _MaxPool.apply(x, _pair(self.kernel_size)[0], _pair(self.stride)[0], size)
        pooled = self._onednn(x) if self._onednn_applies(x) and self._onednn_wins(x) else super().forward(x)
        return pooled if self.maps_of is None else pooled[..., : size[0], : size[1]]

    def _kept_size(self, x: torch.Tensor) -> tuple[int, int] | None:
        """The output's height and width: this pooling's, or those of `maps_of` where this one would give more."""
        if x.dim() < 2:
            return None
        own = [(side - _pair(self.kernel_size)[0]) // _pair(self.stride)[0] + 1 for side in x.shape[-2:]]
        if self.maps_of is None:
            return tuple(own)
        window, stride = self.maps_of
        return tuple(min(mine, (side - window) // stride + 1) for mine, side in zip(own, x.shape[-2:], strict=True))

    def _plain_windows(self, x: torch.Tensor) -> bool:
        """What both faster poolings need: NCHW maps at least a window wide (else nn.MaxPool2d's error: oneDNN gives
        an empty map for a 1x1 input), no padding, dilation or ceil mode, no indices returned."""
        return (
            x.dim() == 4
            and min(x.shape[-2:]) >= max(_pair(self.kernel_size))
            and (self.padding, self.dilation, self.ceil_mode, self.return_indices) in ((0, 1, False, False),)
        )

    def _kernel_applies(self, x: torch.Tensor) -> bool:
        (window, other), stride = _pair(self.kernel_size), _pair(self.stride)
        return (
            self._plain_windows(x)
            and window == other
            and stride[0] == stride[1]
            and window <= 15  # the kernel keeps a window's place in a byte
            and cpu_kernels.available(x)
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.maps_of is None else f", maps_of={self.maps_of}")

    def _onednn_applies(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self._plain_windows(x)
            and torch.backends.mkldnn.is_available()
            and not torch.compiler.is_compiling()
            and not torch.are_deterministic_algorithms_enabled()
        )

    def _onednn(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x.to_mkldnn(), self.kernel_size, self.stride).to_dense()

    def _onednn_wins(self, x: torch.Tensor) -> bool:
        backward = torch.is_grad_enabled() and x.requires_grad
        key = (tuple(x.shape), _pair(self.kernel_size), _pair(self.stride), backward)
        if key not in MaxPool.onednn_faster:
            stock = super().forward
            MaxPool.onednn_faster[key] = _seconds(self._onednn, x, backward) < _seconds(stock, x, backward)
        return MaxPool.onednn_faster[key]


def _seconds(pool, x: torch.Tensor, backward: bool, repeats: int = 3) -> float:
    """The best of `repeats` timings of pool(x) on a detached copy of x (with the backward, if asked)."""
    trial = x.detach().requires_grad_(backward)
    best = float("inf")
    with torch.set_grad_enabled(backward):
        for _ in range(repeats):
            start = time.perf_counter()
            out = pool(trial)
            if backward:
                out.backward(torch.ones_like(out))
            best = min(best, time.perf_counter() - start)
    return best
