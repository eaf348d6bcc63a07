"""alexlab.model.layers: the LRN autograd function and the oneDNN max-pooling compute what PyTorch's modules do."""

import collections

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alexlab.model import cpu_kernels, layers
from alexlab.model.alexnet import AlexNet, make_lrn
from alexlab.model.layers import MaxPool, StemConv, TowerLRN, local_response_norm


def reference_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, towers: int) -> torch.Tensor:
    n, c, h, w = x.shape
    maps = x.reshape(n * towers, c // towers, h, w)
    return nn.LocalResponseNorm(size, alpha, beta, k)(maps).reshape(n, c, h, w)


def lrn_input(towers: int) -> torch.Tensor:
    """ReLU outputs of several scales: zeros, small values and large ones (where the normalisation bites)."""
    x = (torch.randn(4, 96, 9, 7) * torch.tensor([0.1, 3.0, 40.0]).repeat(32)[None, :, None, None]).relu()
    return x.requires_grad_()


@pytest.fixture(params=["kernel", "tensor passes"])
def kernel_path(request):
    """Each test of the layers' values runs on both of their CPU paths: the kernels (cpu_kernels.c) and the tensor
    passes (their fallback), and checks that the path it asked for is the one that ran."""
    if request.param == "kernel":
        assert cpu_kernels.library() is not None, "the LRN's kernel did not build on this machine (a C compiler?)"
        yield request.param
    else:
        with cpu_kernels.disabled():
            yield request.param


def ran_fused(x: torch.Tensor) -> bool:
    return cpu_kernels.available(x)


@pytest.mark.parametrize("kind", ["paper", "caffe"])
@pytest.mark.parametrize("towers", [1, 2])
@pytest.mark.parametrize("block_bytes", [layers.BLOCK_BYTES, 36_288])
def test_lrn_values_and_gradients_equal_pytorchs_in_float32(kind, towers, block_bytes, kernel_path, monkeypatch):
    """On both paths; for the tensor passes the whole batch in one block, and in several: 36,288 bytes hold 1.5
    samples (one block per sample) with one tower, 3 tower-samples with two (blocks of 3, 3 and 2)."""
    whole_batch = block_bytes == layers.BLOCK_BYTES
    assert ran_fused(torch.empty(1)) == (kernel_path == "kernel")
    monkeypatch.setattr(layers, "BLOCK_BYTES", block_bytes)
    blocks = layers._blocks(torch.empty(4 * towers, 96 // towers, 9 * 7))
    assert len(blocks) == (1 if whole_batch else {1: 4, 2: 3}[towers])
    torch.manual_seed(0)
    lrn, x = make_lrn(kind, towers), lrn_input(towers)
    expected = reference_lrn(x, lrn.size, lrn.alpha, lrn.beta, lrn.k, towers)
    got = lrn(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    weights = torch.randn_like(got)
    (grad_ours,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "beta", "towers"), [(5, 0.75, 1), (5, 0.75, 2), (4, 0.75, 2), (3, 0.6, 1), (7, 0.75, 4)]
)
def test_lrn_gradcheck_in_float64(size, beta, towers, kernel_path):
    """The closed-form backward against finite differences; an even window (4) checks the mirrored window, a beta
    other than 0.75 the general power, a window wider than a tower (7 over 3 channels) the edges, and a large alpha
    makes the normalisation term matter."""
    assert ran_fused(torch.empty(1, dtype=torch.float64)) == (kernel_path == "kernel")
    torch.manual_seed(1)
    x = (torch.randn(2, 12, 3, 4, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: local_response_norm(t, size, 0.5, beta, 2.0, towers), (x,))
    torch.testing.assert_close(local_response_norm(x, size, 0.5, beta, 2.0, towers),
                               reference_lrn(x, size, 0.5, beta, 2.0, towers))  # fmt: skip


def test_lrn_in_the_network_matches_pytorchs_for_every_split():
    """grouped (towers inside one tensor) and two_gpu (one tensor per tower, here on two CPU devices) give the
    network of nn.LocalResponseNorm run per tower, outputs and gradients."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    for split, devices in (("grouped", ("cuda:0", "cuda:1")), ("two_gpu", ("cpu", "cpu"))):
        ours = AlexNet(num_classes=10, input_size=64, widths=(16, 32, 48, 48, 32), fc_width=64, stem_kernel=3,
                       stem_stride=1, stem_padding=1, dropout=0.0, split=split, devices=devices)  # fmt: skip
        reference = AlexNet(num_classes=10, input_size=64, widths=(16, 32, 48, 48, 32), fc_width=64, stem_kernel=3,
                            stem_stride=1, stem_padding=1, dropout=0.0, split=split, devices=devices)  # fmt: skip
        reference.load_state_dict(ours.state_dict())
        towers = 2 if split == "grouped" else 1
        for name in ("lrn1", "lrn2"):
            lrn = getattr(reference.features, name)
            setattr(reference.features, name, _Reference(lrn.size, lrn.alpha, lrn.beta, lrn.k, towers))
            setattr(reference.features, f"pool{name[-1]}", nn.MaxPool2d(3, 2))
        out, expected = ours(x), reference(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        grads = torch.autograd.grad(out.square().sum(), list(ours.parameters()))
        expected_grads = torch.autograd.grad(expected.square().sum(), list(reference.parameters()))
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_kernels_gives_the_same_bits_for_any_split_among_threads(dtype, monkeypatch):
    """Deterministic: one thread or several, and every call, the same bits forward and backward (each element's
    arithmetic does not depend on which samples a call holds)."""
    torch.manual_seed(0)
    x, weights = lrn_input(2).detach().to(dtype), None
    results = []
    for threads in (1, 2, 3, 1):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        trial = x.clone().requires_grad_()
        out = local_response_norm(trial, 5, 1e-4 * 100, 0.75, 2.0, towers=2)
        weights = torch.randn_like(out, generator=torch.Generator().manual_seed(1)) if weights is None else weights
        (grad,) = torch.autograd.grad((out * weights).sum(), trial)
        results.append((out, grad))
    for out, grad in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(grad, results[0][1])


def test_cpu_kernels_is_built_once_per_cpu_into_the_cache(tmp_path, monkeypatch):
    """The library lands in $XDG_CACHE_HOME/alexlab under a name of this CPU's; another CPU gets another name;
    the second load of this one builds nothing."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu_kernels.library.cache_clear()
    try:
        assert cpu_kernels.library() is not None
        (built,) = (tmp_path / "alexlab").glob("kernels-*.so")
        assert built == cpu_kernels.library_path(cpu_kernels.compiler())
        monkeypatch.setattr(cpu_kernels, "cpu_identity", lambda: "flags: another cpu")
        assert cpu_kernels.library_path(cpu_kernels.compiler()) != built
        monkeypatch.undo()
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        stamp = built.stat().st_mtime_ns
        cpu_kernels.library.cache_clear()
        assert cpu_kernels.library() is not None and built.stat().st_mtime_ns == stamp
        assert [p.name for p in (tmp_path / "alexlab").iterdir()] == [built.name]  # no build folder left
    finally:
        cpu_kernels.library.cache_clear()


def test_a_damaged_kernel_library_in_the_cache_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cpu_kernels.library_path(cpu_kernels.compiler())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x7fELF cut short")
    cpu_kernels.library.cache_clear()
    try:
        assert cpu_kernels.library() is not None and path.stat().st_size > 1000
    finally:
        cpu_kernels.library.cache_clear()


@pytest.mark.parametrize("why", ["no compiler", "compiler fails", "cache unwritable"])
def test_lrn_falls_back_to_its_tensor_passes_where_the_kernel_cannot_build(why, tmp_path, monkeypatch, caplog):
    """No C compiler, one that fails, or a cache it cannot write: one warning, and the same values and gradients
    from the tensor passes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if why == "no compiler":
        monkeypatch.setattr(cpu_kernels, "compiler", lambda: None)
    elif why == "compiler fails":
        monkeypatch.setenv("CC", "false")
    else:
        (tmp_path / "alexlab").write_text("a file where the cache's folder should be")
    cpu_kernels.library.cache_clear()
    try:
        lrn, x = make_lrn("paper", 2), lrn_input(2)
        for _ in range(2):
            got, expected = lrn(x), reference_lrn(x, lrn.size, lrn.alpha, lrn.beta, lrn.k, 2)
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
            (grad_ours,) = torch.autograd.grad(got.sum(), x)
            (grad_reference,) = torch.autograd.grad(expected.sum(), x)
            torch.testing.assert_close(grad_ours, grad_reference, rtol=1e-5, atol=1e-6)
        assert not cpu_kernels.available(x)
        warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{cpu_kernels.WHAT}:")]
        assert len(warnings) == 1 and "the slower tensor passes" in warnings[0] and "\n" not in warnings[0]
    finally:
        cpu_kernels.library.cache_clear()


def test_cpu_kernels_is_left_to_the_tensor_passes_where_it_does_not_apply():
    """bfloat16 and a GPU run the tensor passes (the kernel is float32/float64 on a CPU); so does torch.compile's
    tracing, which fuses them itself."""
    assert not cpu_kernels.available(torch.empty(2, dtype=torch.bfloat16))
    assert not cpu_kernels.available(torch.empty(2, device="meta"))
    x = lrn_input(1).detach().bfloat16().requires_grad_()
    got = local_response_norm(x, 5, 1e-2, 0.75, 2.0)
    torch.testing.assert_close(got.float(), reference_lrn(x.float(), 5, 1e-2, 0.75, 2.0, 1), rtol=2e-2, atol=1e-2)
    compiled = torch.compile(lambda t: local_response_norm(t, 5, 1e-2, 0.75, 2.0), backend="eager", fullgraph=True)
    x = lrn_input(1).detach()
    torch.testing.assert_close(compiled(x), reference_lrn(x, 5, 1e-2, 0.75, 2.0, 1))


class _Reference(nn.Module):
    def __init__(self, size, alpha, beta, k, towers):
        super().__init__()
        self.args = (size, alpha, beta, k, towers)

    def forward(self, x):
        return reference_lrn(x, *self.args)


def test_lrn_refuses_towers_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="divisible by 2"):
        TowerLRN(5, 1e-4, 0.75, 2.0, towers=2)(torch.rand(1, 5, 3, 3))


@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (2, 2)])
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (4, 8, 28, 28), (3, 5, 13, 13), (2, 4, 6, 6)])
def test_max_pool_equals_pytorchs_with_ties(kernel, stride, shape, kernel_path, monkeypatch):
    """Integer-valued inputs tie often: each window's gradient must go to the same (first) maximum as
    nn.MaxPool2d's. The CPU kernel adds overlapping windows' gradients in PyTorch's order too (the same bits);
    oneDNN's pooling, forced here where the kernel is off (a defaultdict that says it is faster for every shape),
    may add them in another (float rounding)."""
    monkeypatch.setattr(MaxPool, "onednn_faster", collections.defaultdict(lambda: True))
    torch.manual_seed(0)
    x = torch.randint(0, 3, shape).float().requires_grad_()
    assert MaxPool(kernel, stride)._kernel_applies(x) == (kernel_path == "kernel")
    got, expected = MaxPool(kernel, stride)(x), nn.MaxPool2d(kernel, stride)(x)
    assert torch.equal(got, expected)
    weights = torch.randn_like(got)
    (grad_ours,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_reference, rtol=0, atol=0 if kernel_path == "kernel" else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_max_pool_kernel_routes_nan_and_infinities_as_pytorch_does(dtype):
    """A NaN wins its window (the last NaN of it, as PyTorch's kernel scans), -inf loses to everything, a window of
    -inf keeps its first place, +inf wins; values and gradients the same bits as nn.MaxPool2d's, float32 and
    float64."""
    torch.manual_seed(2)
    x = torch.randn(3, 4, 11, 9, dtype=dtype)
    flat = x.view(-1)
    flat[torch.randperm(flat.numel())[:40]] = float("nan")
    flat[torch.randperm(flat.numel())[:40]] = float("-inf")
    flat[torch.randperm(flat.numel())[:10]] = float("inf")
    x[0, 0, :3, :3] = float("-inf")
    x = x.requires_grad_()
    assert MaxPool(3, 2)._kernel_applies(x)
    got, expected = MaxPool(3, 2)(x), nn.MaxPool2d(3, 2)(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    weights = torch.randn_like(got)
    (grad_ours,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.equal(grad_ours, grad_reference)


def test_max_pool_kernel_keeps_the_map_size_of_maps_of_and_any_thread_count(monkeypatch):
    """pooling=plain's windows (2, every 2) with the map size of overlapping pooling's (maps_of=(3, 2)): the kernel
    computes only the outputs kept, the same as nn.MaxPool2d's cropped; one thread or three, the same bits."""
    x = torch.randn(5, 6, 13, 13, requires_grad=True)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        out = MaxPool(2, 2, maps_of=(3, 2))(x)
        results.append((out, torch.autograd.grad(out.square().sum(), x)[0]))
    expected = nn.MaxPool2d(2, 2)(x)[..., :6, :6]
    assert results[0][0].shape == (5, 6, 6, 6) and torch.equal(results[0][0], expected)
    assert torch.equal(results[0][1], torch.autograd.grad(expected.square().sum(), x)[0])
    assert torch.equal(results[1][0], results[0][0]) and torch.equal(results[1][1], results[0][1])


def test_max_pool_falls_back_to_pytorchs_where_onednn_does_not_apply():
    x = torch.randn(2, 3, 8, 8)
    for pool in (MaxPool(3, 2, padding=1), MaxPool(3, 2, ceil_mode=True)):
        reference = nn.MaxPool2d(3, 2, padding=pool.padding, ceil_mode=pool.ceil_mode)
        assert torch.equal(pool(x), reference(x))
    assert torch.equal(MaxPool(3, 2)(x.double()), F.max_pool2d(x.double(), 3, 2))
    assert isinstance(MaxPool(3, 2), nn.MaxPool2d)  # the pooling switch's test and users' isinstance checks


@pytest.mark.parametrize("onednn_faster", [True, False])
def test_max_pool_times_both_once_per_shape_and_keeps_the_faster(onednn_faster, monkeypatch):
    """Without the CPU kernel, the first call for a shape times oneDNN's pooling against PyTorch's (with the
    backward when the input needs a gradient) and the shape keeps the faster; later calls do not time again. Either
    way the values are nn.MaxPool2d's."""
    timed = []

    def seconds(pool, x, backward, repeats=3):
        timed.append((tuple(x.shape), backward))
        is_onednn = getattr(pool, "__func__", None) is MaxPool._onednn
        return 1.0 if is_onednn != onednn_faster else 0.5

    monkeypatch.setattr(MaxPool, "onednn_faster", {})
    monkeypatch.setattr(layers, "_seconds", seconds)
    pool, x = MaxPool(3, 2), torch.randn(2, 4, 9, 9, requires_grad=True)
    with cpu_kernels.disabled():  # where the CPU kernel cannot build
        for _ in range(3):
            assert torch.equal(pool(x), nn.MaxPool2d(3, 2)(x))
        with torch.no_grad():
            pool(x)
    assert timed == [((2, 4, 9, 9), True)] * 2 + [((2, 4, 9, 9), False)] * 2
    assert MaxPool.onednn_faster == {((2, 4, 9, 9), (3, 3), (2, 2), True): onednn_faster,
                                     ((2, 4, 9, 9), (3, 3), (2, 2), False): onednn_faster}  # fmt: skip


def test_max_pool_timing_runs_the_backward_on_a_copy():
    """The trial pools a detached copy: the caller's input gets no gradient from it."""
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    assert layers._seconds(lambda t: F.max_pool2d(t, 3, 2), x, backward=True) > 0
    assert x.grad is None


@pytest.mark.parametrize("side", [1, 2])
def test_max_pool_refuses_a_map_smaller_than_its_window_as_pytorch_does(side):
    """oneDNN returns an empty map for a 1x1 input where nn.MaxPool2d raises; the model turns that error into
    'input_size=... is too small' instead of building a classifier over zero features."""
    x = torch.randn(1, 4, side, side)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        MaxPool(3, 2)(x)
    # the small model's stem keeps 8 px, two poolings leave 1 px: the third window does not fit
    with pytest.raises(ValueError, match="input_size=8 is too small"):
        AlexNet(input_size=8, widths=(8, 8, 8, 8, 8), fc_width=8, stem_kernel=3, stem_stride=1, stem_padding=1)


def test_max_pool_under_deterministic_algorithms_never_chooses_by_timing(monkeypatch):
    """deterministic=true (Lightning's torch.use_deterministic_algorithms): a choice by timing could differ between
    a run and its resumed second half, and so could their rounding; the CPU kernel (deterministic) or the stock
    pooling, nothing timed."""
    monkeypatch.setattr(MaxPool, "onednn_faster", collections.defaultdict(lambda: True))
    monkeypatch.setattr(MaxPool, "_onednn", lambda self, x: pytest.fail("oneDNN chosen under deterministic=true"))
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    torch.use_deterministic_algorithms(True)
    try:
        out = MaxPool(3, 2)(x)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(out, torch.nn.functional.max_pool2d(x, 3, 2))
    with cpu_kernels.disabled():
        torch.use_deterministic_algorithms(True)
        try:
            assert torch.equal(MaxPool(3, 2)(x), torch.nn.functional.max_pool2d(x, 3, 2))
        finally:
            torch.use_deterministic_algorithms(False)


STEMS = [(1, 3, 1, 28), (3, 5, 2, 17), (1, 3, 0, 9), (2, 7, 3, 12), (3, 11, 5, 13), (4, 1, 0, 6)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("in_channels", "kernel", "padding", "side"), STEMS)
def test_stem_conv_equals_nn_conv2d(dtype, in_channels, kernel, padding, side, kernel_path):
    """The stem's kernel against nn.Conv2d with the same weights: output, weight and bias gradients (float32 to
    rounding, float64 to 1e-12), rectangular inputs, every padding up to half the kernel; and the path asked for is
    the one taken."""
    torch.manual_seed(0)
    stem = StemConv(in_channels, 8, kernel, padding=padding).to(dtype)
    reference = nn.Conv2d(in_channels, 8, kernel, padding=padding).to(dtype)
    reference.load_state_dict(stem.state_dict())
    x = torch.randn(5, in_channels, side, side + 3, dtype=dtype)
    assert stem._kernel_applies(x) == (kernel_path == "kernel")
    out, expected = stem(x), reference(x)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(out, expected, **tolerance)
    weights = torch.randn_like(out)
    ours = torch.autograd.grad((out * weights).sum(), [stem.weight, stem.bias])
    theirs = torch.autograd.grad((expected * weights).sum(), [reference.weight, reference.bias])
    for got, want in zip(ours, theirs, strict=True):  # sums of hundreds of signed products: float32 to 1e-4
        torch.testing.assert_close(got, want, **(tolerance if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}))


def test_stem_conv_gives_the_same_bits_for_any_thread_count(monkeypatch):
    torch.manual_seed(0)
    stem, x = StemConv(1, 32, 3, padding=1), torch.randn(16, 1, 28, 28)
    results = []
    for threads in (1, 2, 3, 1):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        out = stem(x)
        results.append((out, *torch.autograd.grad(out.square().sum(), [stem.weight, stem.bias])))
    for result in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(result, results[0], strict=True))


def test_stem_conv_leaves_what_is_not_a_stem_to_nn_conv2d():
    """An input that needs a gradient (the kernel computes none for it), a stride, groups, a padding mode, more
    input channels than a stem has, or no bias where it matters not: nn.Conv2d's own forward, the same values."""
    x = torch.randn(2, 3, 12, 12)
    cases = [
        (StemConv(3, 4, 3, padding=1), x.clone().requires_grad_()),
        (StemConv(3, 4, 3, stride=2, padding=1), x),
        (StemConv(4, 4, 3, groups=2), torch.randn(2, 4, 9, 9)),
        (StemConv(3, 4, 3, padding=1, padding_mode="reflect"), x),
        (StemConv(8, 4, 3), torch.randn(2, 8, 9, 9)),
    ]
    for stem, data in cases:
        assert not stem._kernel_applies(data)
        reference = nn.Conv2d(stem.in_channels, 4, 3, stride=stem.stride, padding=stem.padding, groups=stem.groups,
                              padding_mode=stem.padding_mode)  # fmt: skip
        reference.load_state_dict(stem.state_dict())
        assert torch.equal(stem(data), reference(data))
    no_bias = StemConv(1, 4, 3, padding=1, bias=False)
    assert no_bias._kernel_applies(torch.randn(2, 1, 8, 8)) and no_bias(torch.randn(2, 1, 8, 8)).shape == (2, 4, 8, 8)


def test_loading_the_kernels_keeps_subnormal_numbers():
    """The library is linked without -ffast-math's crtfastmath.o, whose constructor would set the whole process to
    flush subnormals to zero (in the threads started after the load only: results that depend on the thread)."""
    tiny = torch.full((1 << 16,), 1e-39)
    assert cpu_kernels.library() is not None
    assert torch.equal(tiny * 1.0, tiny) and bool((tiny * 1.0 > 0).all())


def test_lrn_of_huge_activations_stays_finite_as_pytorchs():
    """d^1.5 of a float32 d above 1e25 overflows: the kernel takes d^-0.75 as r * sqrt(r), r = 1 / sqrt(d)."""
    x = torch.ones(1, 6, 1, 1)
    x[0, 0] = 1e16
    got, expected = TowerLRN(5, 1e-4, 0.75, 2.0)(x), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("layer", ["lrn", "pool", "stem"])
def test_double_backward_is_pytorchs(layer, kernel_path):
    """A gradient of a gradient (a gradient penalty, a Hessian-vector product) through each layer: gradgradcheck in
    float64, and for the stem the weight's second derivative against nn.Conv2d's."""
    torch.manual_seed(0)
    if layer == "stem":
        stem = StemConv(1, 3, 3, padding=1).double()
        reference = nn.Conv2d(1, 3, 3, padding=1).double()
        reference.load_state_dict(stem.state_dict())
        x = torch.randn(2, 1, 5, 5, dtype=torch.float64)

        def second(module):
            (g,) = torch.autograd.grad(module(x).square().sum(), module.weight, create_graph=True)
            return torch.autograd.grad(g.pow(3).sum(), module.weight)[0]

        torch.testing.assert_close(second(stem), second(reference))
        return
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64, requires_grad=True)
    module = TowerLRN(3, 0.5, 0.75, 1.0, towers=2) if layer == "lrn" else MaxPool(3, 2)
    assert torch.autograd.gradgradcheck(module, (x,))


def test_stem_conv_refuses_what_nn_conv2d_refuses_and_leaves_it_odd_inputs():
    """Another channel count: nn.Conv2d's error; a non-finite pixel, an empty map, autocast, a weight on another
    device: nn.Conv2d's own forward (the same values); torch.func's transforms see nn.Conv2d's operations."""
    stem = StemConv(3, 4, 3, padding=1)
    with pytest.raises(RuntimeError, match="channels"):
        stem(torch.randn(2, 1, 8, 8))
    x = torch.rand(1, 1, 6, 6)
    x[0, 0, 2, 0] = float("inf")
    grey = StemConv(1, 1, 3)
    reference = nn.Conv2d(1, 1, 3)
    reference.load_state_dict(grey.state_dict())
    assert not grey._kernel_applies(x)
    (ours,) = torch.autograd.grad(grey(x).sum(), grey.weight)
    (theirs,) = torch.autograd.grad(reference(x).sum(), reference.weight)
    assert torch.equal(ours.isfinite(), theirs.isfinite())
    assert not StemConv(1, 2, 3, padding=2)._kernel_applies(torch.randn(1, 1, 0, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not grey._kernel_applies(torch.rand(1, 1, 6, 6)) and grey(torch.rand(1, 1, 6, 6)).dtype == torch.bfloat16
    from torch.func import functional_call, grad

    params = {name: p.detach() for name, p in grey.named_parameters()}
    sample = torch.rand(1, 6, 6)
    per_sample = grad(lambda p, xi: functional_call(grey, p, (xi[None],)).square().sum())(params, sample)
    expected = torch.autograd.grad(reference(sample[None]).square().sum(), reference.weight)[0]
    torch.testing.assert_close(per_sample["weight"], expected)


def test_max_pool_keeps_the_smaller_of_its_own_and_maps_of_sizes():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    got = MaxPool(3, 2, maps_of=(2, 2))(x)  # maps_of would give 3 x 3, its own windows 2 x 2
    assert torch.equal(got, nn.MaxPool2d(3, 2)(x))
