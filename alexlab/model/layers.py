"""The two layers of AlexNet that PyTorch's own modules make slow on a CPU: LRN and overlapping max-pooling.

Both compute exactly what `nn.LocalResponseNorm` and `nn.MaxPool2d` compute (tests compare values and gradients);
what differs is how. Measured in the quickstart network's training step (batch 128, 28 px, 2 CPU cores): LRN as
`nn.LocalResponseNorm` more than doubled the step, and `nn.MaxPool2d` took a third of it (see the functions below).
`alexlab bench` reports the step with `lrn=paper` against `lrn=off` side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


def _band(channels: int, size: int, front: int, scale: float, like: torch.Tensor) -> torch.Tensor:
    """[channels, channels] matrix whose row c holds `scale` at the `size` channels c - front .. c - front + size - 1
    (those that exist): band @ maps sums each channel's window in one matrix product over the channels."""
    c = torch.arange(channels, device=like.device)
    offset = c[None, :] - c[:, None] + front
    return ((offset >= 0) & (offset < size)).to(like.dtype) * scale


class _LocalResponseNorm(torch.autograd.Function):
    """b_c = a_c * d_c^-beta with d_c = k + alpha / size * sum of a_j^2 over the `size` channels j around c, inside
    each tower. cuda-convnet's way: the forward keeps the input, d and d^-beta; the backward is the closed form

        da_i = g_i d_i^-beta - 2 alpha beta / size * a_i * sum over the c whose window holds i of g_c a_c d_c^-beta-1

    i.e. one more window sum (over the mirrored window) instead of autograd's trace through squares, pads, sums and
    a pow. Every window sum is one batched matrix product of a banded [C, C] matrix with the maps (one pass over
    the channels, vectorised by BLAS; on this CPU as fast as one elementwise multiply), and d^-0.75 (the paper's
    beta) is rsqrt(d^1.5) from a sqrt and an rsqrt, without a general pow (three times slower here: exp and log).
    Measured (quickstart network, training step, batch 128): the sum of shifted channel slices with a pow took
    1.9x the step without LRN, nn.LocalResponseNorm 2.1x; this function `alexlab bench` reports as "LRN cost"."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int) -> torch.Tensor:
        n, c, h, w = x.shape
        maps = x.reshape(n * towers, c // towers, h * w)  # each tower's maps apart (a view of NCHW)
        window = _band(c // towers, size, size // 2, alpha / size, maps).expand(maps.shape[0], -1, -1)
        d = torch.bmm(window, maps * maps).add_(k)
        power = d.sqrt().mul_(d).rsqrt_() if beta == 0.75 else d.pow(-beta)  # d^-0.75 = (d^1.5)^-0.5
        ctx.save_for_backward(maps, d, power)
        ctx.size, ctx.alpha, ctx.beta = size, alpha, beta
        return (maps * power).view(n, c, h, w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        maps, d, power = ctx.saved_tensors
        size, alpha, beta = ctx.size, ctx.alpha, ctx.beta
        grad_in = grad.reshape(maps.shape) * power  # g_i d_i^-beta, the first term
        ratio = (grad_in * maps).div_(d)  # g_c a_c d_c^-beta-1
        # channel i is in the windows of c = i - (size - 1) // 2 .. i + size // 2: the mirrored band
        mirrored = _band(maps.shape[1], size, (size - 1) // 2, -2.0 * alpha * beta / size, maps)
        spread = torch.bmm(mirrored.expand(maps.shape[0], -1, -1), ratio)
        return grad_in.addcmul_(maps, spread).view(grad.shape), None, None, None, None, None


def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int = 1):
    """nn.LocalResponseNorm(size, alpha, beta, k) applied inside each of `towers` channel groups of x [N, C, H, W]."""
    if x.shape[1] % towers:
        raise ValueError(f"LRN over {towers} towers needs a channel count divisible by {towers}, got {x.shape[1]}")
    return _LocalResponseNorm.apply(x.contiguous(), size, alpha, beta, k, towers)


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


class MaxPool(nn.MaxPool2d):
    """nn.MaxPool2d, through oneDNN on a CPU. PyTorch's CPU kernel for NCHW max-pooling is scalar: 20 ms for the
    quickstart's first pooling (128 x 32 x 28 x 28), a third of its training step; oneDNN's pooling, with the
    conversions to its layout and back, takes 2 ms forward and 4 ms with the backward. Same values, and the same
    gradients (oneDNN routes each window's gradient to its first maximum, as PyTorch does; overlapping windows may
    add in another order, so equal to float rounding). On a GPU (cuDNN), in bf16, under torch.compile or without
    oneDNN, it is nn.MaxPool2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and x.dim() == 4
            # a map smaller than the window: nn.MaxPool2d's error (oneDNN gives an empty map for a 1x1 input)
            and min(x.shape[-2:]) >= max(_pair(self.kernel_size))
            and (self.padding, self.dilation, self.ceil_mode, self.return_indices) in ((0, 1, False, False),)
            and torch.backends.mkldnn.is_available()
            and not torch.compiler.is_compiling()
        ):
            return F.max_pool2d(x.to_mkldnn(), self.kernel_size, self.stride).to_dense()
        return super().forward(x)
