"""The LRN on a GPU (.ci/gpu run): which way is fastest there, alexlab's function or nn.LocalResponseNorm, each as
it is or under torch.compile, in float32 and bfloat16, for the LRNs of model=paper at batch 128 (after conv1:
128 x 96 x 55 x 55, after conv2: 128 x 256 x 27 x 27, both in two towers). Forward and backward, timed with CUDA
events: the median of 20 after 3 warm-ups. Each way's output and input gradient are compared with
nn.LocalResponseNorm's in float32. Writes the figures as JSON to the path given (argv[1]) and prints them.

On a machine without a GPU it runs the same on the CPU at batch 2, as a check of the script itself."""

import json
import statistics
import sys
import time

import torch
from torch import nn

from alexlab.model.alexnet import make_lrn

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
BATCH = 128 if CUDA else 2
SHAPES = {"conv1": (BATCH, 96, 55, 55), "conv2": (BATCH, 256, 27, 27)}
TOWERS = 2


class StockLRN(nn.Module):
    """nn.LocalResponseNorm inside each tower: what alexlab's function replaces."""

    def __init__(self, lrn):
        super().__init__()
        self.lrn = nn.LocalResponseNorm(lrn.size, lrn.alpha, lrn.beta, lrn.k)

    def forward(self, x):
        return torch.cat([self.lrn(tower) for tower in x.chunk(TOWERS, dim=1)], dim=1)


def seconds(fn, x: torch.Tensor, grad: torch.Tensor, repeats: int = 20) -> float:
    def once():
        x.grad = None
        fn(x).backward(grad)

    for _ in range(3):
        once()
    times = []
    for _ in range(repeats):
        if CUDA:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            once()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main(path: str) -> None:
    ours = make_lrn("paper", TOWERS)
    ways = {"alexlab": ours, "nn.LocalResponseNorm": StockLRN(ours)}
    ways |= {f"{name} compiled": torch.compile(module) for name, module in list(ways.items())}
    results = {"device": torch.cuda.get_device_name() if CUDA else "cpu", "torch": torch.__version__, "rows": []}
    for layer, shape in SHAPES.items():
        torch.manual_seed(0)
        base = torch.randn(shape, device=DEVICE).relu_()  # the LRN follows a ReLU
        grad = torch.randn(shape, device=DEVICE)
        reference = base.clone().requires_grad_()
        expected = StockLRN(ours)(reference)
        expected.backward(grad)
        for dtype in (torch.float32, torch.bfloat16):
            for name, module in ways.items():
                x = base.to(dtype).detach().requires_grad_()
                row = {"layer": layer, "dtype": str(dtype).removeprefix("torch."), "way": name}
                try:
                    out = module(x)
                    out.backward(grad.to(dtype))
                    row["max_abs_diff_out"] = (out.float() - expected).abs().max().item()
                    row["max_abs_diff_grad"] = (x.grad.float() - reference.grad).abs().max().item()
                    row["ms"] = 1000 * seconds(module, x, grad.to(dtype))
                except (RuntimeError, NotImplementedError) as exc:  # e.g. no bfloat16 kernel for a stock op
                    row["error"] = str(exc).splitlines()[0]
                results["rows"].append(row)
                print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    with open(path, "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lrn.json")
