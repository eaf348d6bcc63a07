"""The network: exact sizes from the paper (docs/paper.md), and each switch changing what it claims to change."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from alexlab.info import layer_table
from alexlab.model.alexnet import AlexNet, TowerLRN, from_torchvision_state_dict
from alexlab.model.layers import MaxPool

TORCHVISION_LAYOUT = dict(
    widths=(64, 192, 384, 256, 256),
    split="single",
    lrn="off",
    dropout_at="inputs",
    adaptive_pool=True,
    init="default",
    stem_padding=2,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gmacs(model: AlexNet, size: int = 224) -> float:
    return sum(row.macs for row in layer_table(model, 3, size)) / 1e9


@pytest.mark.parametrize(
    "kwargs, params, macs",
    [
        (dict(split="grouped"), 60_965_224, 0.724),
        (dict(split="half"), 59_798_312, 0.392),
        (dict(split="single"), 62_378_344, 1.135),
        (TORCHVISION_LAYOUT, 61_100_840, 0.714),
    ],
)
def test_parameter_and_mac_counts_match_the_paper_and_references(kwargs, params, macs):
    model = AlexNet(num_classes=1000, **kwargs)
    assert n_params(model) == params
    assert gmacs(model) == pytest.approx(macs, abs=0.0005)


@pytest.mark.parametrize("size", [224, 227])
def test_224_and_227_inputs_give_the_papers_maps(size):
    rows = layer_table(AlexNet(input_size=size), 3, size)
    sides = {row.name.split(".")[1]: row.output_shape[-1] for row in rows if row.name.startswith("features")}
    assert [sides[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")] == [
        55,
        27,
        27,
        13,
        13,
        13,
        13,
        6,
    ]
    assert AlexNet(input_size=size, num_classes=7)(torch.randn(2, 3, size, size)).shape == (2, 7)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 3)])
def test_small_layout_serves_28_to_64_px(size, channels):
    model = AlexNet(
        num_classes=10,
        in_channels=channels,
        input_size=size,
        widths=(64, 128, 192, 192, 128),
        fc_width=512,
        stem_kernel=3,
        stem_stride=1,
        stem_padding=1,
    )
    assert model(torch.randn(3, channels, size, size)).shape == (3, 10)


def conv_names(model: AlexNet) -> list[str]:
    return [name for name, m in model.features.named_children() if isinstance(m, nn.Conv2d)]


def test_depth_removes_middle_layers_or_adds_conv6():
    assert conv_names(AlexNet(depth=5)) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert conv_names(AlexNet(depth=4)) == ["conv1", "conv2", "conv3", "conv5"]
    assert conv_names(AlexNet(depth=3)) == ["conv1", "conv2", "conv5"]
    deep = AlexNet(depth=6)
    assert conv_names(deep) == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6"]
    # conv6 sits over the last pooling layer and keeps conv5's width
    names = list(dict(deep.features.named_children()))
    assert names.index("conv6") > names.index("pool5")
    assert deep.features.conv6.out_channels == 256
    assert n_params(AlexNet(depth=3)) < n_params(AlexNet(depth=4)) < n_params(AlexNet(depth=5))
    for depth in (3, 4, 6):
        assert AlexNet(depth=depth, num_classes=5)(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_activation_switch():
    kinds = {type(m) for m in AlexNet(activation="tanh").modules()}
    assert nn.Tanh in kinds and nn.ReLU not in kinds
    assert sum(isinstance(m, nn.ReLU) for m in AlexNet().modules()) == 7


def test_lrn_constants_and_placement():
    paper = AlexNet(lrn="paper")
    lrns = [(name, m) for name, m in paper.features.named_children() if isinstance(m, TowerLRN)]
    assert [name for name, _ in lrns] == ["lrn1", "lrn2"]
    names = list(dict(paper.features.named_children()))
    assert names.index("lrn1") == names.index("act1") + 1  # after the ReLU, before the pool
    norm = lrns[0][1]
    assert (norm.size, norm.alpha, norm.beta, norm.k) == (5, 5e-4, 0.75, 2.0)  # alpha 1e-4 on the sum = 5e-4 / n
    assert AlexNet(lrn="caffe").features.lrn1.alpha == 1e-4
    assert not any(isinstance(m, TowerLRN) for m in AlexNet(lrn="off").modules())


def test_paper_lrn_matches_the_printed_formula():
    lrn = AlexNet(lrn="paper", split="single").features.lrn1
    a = torch.rand(1, 7, 2, 2) * 10
    expected = torch.empty_like(a)
    for i in range(7):
        lo, hi = max(0, i - 2), min(6, i + 2)
        expected[:, i] = a[:, i] / (2 + 1e-4 * (a[:, lo : hi + 1] ** 2).sum(1)) ** 0.75
    torch.testing.assert_close(lrn(a), expected)


@pytest.mark.parametrize("towers", [1, 2])
def test_lrn_gives_the_values_and_gradients_of_pytorchs_local_response_norm(towers):
    torch.manual_seed(0)
    x = (torch.rand(3, 96, 7, 7) * 8).requires_grad_()
    ours = TowerLRN(5, alpha=5e-4, beta=0.75, k=2.0, towers=towers)
    reference = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    expected = reference(x.reshape(3 * towers, 96 // towers, 7, 7)).reshape(3, 96, 7, 7)
    got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    weights = torch.rand_like(got)
    (grad_ours,) = torch.autograd.grad((got * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_reference, rtol=1e-5, atol=1e-6)


def test_lrn_stays_inside_each_tower():
    x = torch.rand(1, 96, 5, 5)
    grouped, single = AlexNet(split="grouped").features.lrn1, AlexNet(split="single").features.lrn1
    x2 = x.clone()
    x2[:, 48] += 5.0  # first channel of tower B
    assert torch.equal(grouped(x)[:, :48], grouped(x2)[:, :48])  # tower A does not see tower B
    assert not torch.equal(single(x)[:, 46:48], single(x2)[:, 46:48])  # one tower: neighbours across 47/48


def test_pooling_switch():
    pools = [m for m in AlexNet(pooling="plain").modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 3
    assert {(p.kernel_size, p.stride) for p in AlexNet().modules() if isinstance(p, nn.MaxPool2d)} == {(3, 2)}
    # non-overlapping pooling still gives 6x6 maps into fc6 at 224
    assert AlexNet(pooling="plain").classifier.fc6.in_features == 9216


@pytest.mark.parametrize("side", [13, 14, 27, 28, 55, 56])
def test_plain_pooling_keeps_overlapping_poolings_map_size_and_pools_2x2_windows(side):
    """At the paper's odd sizes both poolings give the same maps; at even sizes plain pooling leaves out the last row
    and column, as the overlapping windows do, instead of one more output: the switch changes the overlap alone."""
    x = torch.randn(2, 3, side, side)
    overlap, plain = MaxPool(3, 2), MaxPool(2, 2, maps_of=(3, 2))
    assert plain(x).shape == overlap(x).shape == (2, 3, (side - 3) // 2 + 1, (side - 3) // 2 + 1)
    stock = nn.functional.max_pool2d(x, 2, 2)
    assert torch.equal(plain(x), stock[..., : plain(x).shape[-2], : plain(x).shape[-1]])  # 2x2 windows, stride 2


def test_dropout_switch_and_position():
    order = list(dict(AlexNet().classifier.named_children()))
    assert order == ["fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]  # the paper: on fc6/fc7 outputs
    drops = [m for m in AlexNet().modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in drops] == [0.5, 0.5]
    assert list(dict(AlexNet(dropout_at="inputs").classifier.named_children()))[0] == "drop6"
    off = AlexNet(dropout=0.0, num_classes=10).train()
    assert not any(isinstance(m, nn.Dropout) for m in off.modules())
    x = torch.randn(2, 3, 224, 224)
    assert torch.equal(off(x), off(x))  # nothing random left in training mode
    on = AlexNet(num_classes=10).train()
    assert not torch.equal(on(x), on(x))


def test_split_layouts():
    grouped, single, half = AlexNet(split="grouped"), AlexNet(split="single"), AlexNet(split="half")
    assert [grouped.features.get_submodule(c).groups for c in conv_names(grouped)] == [1, 2, 1, 2, 2]
    assert [single.features.get_submodule(c).groups for c in conv_names(single)] == [1] * 5
    assert [half.features.get_submodule(c).out_channels for c in conv_names(half)] == [48, 128, 192, 192, 256]
    assert half.classifier.fc6.out_features == 4096


def test_towers_only_cross_at_conv3_and_the_classifier():
    model = AlexNet(split="grouped", lrn="off")
    f = model.features
    x = torch.rand(1, 96, 27, 27)
    x2 = x.clone()
    x2[:, 48:] += 1.0  # change tower B's conv1 maps only
    assert torch.equal(f.conv2(x)[:, :128], f.conv2(x2)[:, :128])  # conv2: own tower
    y = torch.rand(1, 256, 13, 13)
    y2 = y.clone()
    y2[:, 128:] += 1.0
    assert not torch.equal(f.conv3(y)[:, :192], f.conv3(y2)[:, :192])  # conv3: both towers


def test_paper_init():
    model = AlexNet(num_classes=1000, init="paper")
    layers = {**dict(model.features.named_children()), **dict(model.classifier.named_children())}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        assert layers[name].weight.std().item() == pytest.approx(0.01, rel=0.05)
        assert layers[name].weight.mean().abs().item() < 1e-3
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.all(layers[name].bias == expected_bias)
    default = AlexNet(init="default")
    assert default.features.conv2.bias.std() > 0 and default.features.conv1.weight.std() > 0.02


@pytest.mark.parametrize(("activation", "gain"), [("relu", 2**0.5), ("tanh", 5 / 3)])
def test_he_init_keeps_each_layers_scale(activation, gain):
    model = AlexNet(num_classes=10, init="he", activation=activation)
    layers = {**dict(model.features.named_children()), **dict(model.classifier.named_children())}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        weight = layers[name].weight
        fan_in = weight[0].numel()  # per output: in_channels / groups x kernel area, or in_features
        assert weight.std().item() == pytest.approx(gain / fan_in**0.5, rel=0.05), name
        assert torch.all(layers[name].bias == 0), name
    assert layers["fc8"].weight.std().item() == pytest.approx(0.01, rel=0.1) and torch.all(layers["fc8"].bias == 0)
    # the point of it: activations keep their scale through the small net, where init=paper shrinks them
    small = dict(num_classes=10, input_size=32, widths=(32, 64, 96, 96, 64), fc_width=512, stem_kernel=3,
                 stem_stride=1, stem_padding=1, dropout=0.0, lrn="off")  # fmt: skip
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    # how much conv5's pooled features differ between images (std over the batch, averaged)
    trace = {init: AlexNet(**small, init=init).features(x).std(dim=0).mean().item() for init in ("he", "paper")}
    assert 0.2 < trace["he"] < 2.0
    assert trace["paper"] < 1e-3  # measured 2e-5: the images' differences are all but gone (the biases remain)


def test_torchvision_state_dict_gives_identical_outputs():
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None, num_classes=1000).eval()
    ours = AlexNet(num_classes=1000, **TORCHVISION_LAYOUT).eval()
    ours.load_state_dict(from_torchvision_state_dict(reference.state_dict()))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_two_gpu_matches_grouped_on_cpu_devices():
    torch.manual_seed(0)
    grouped = AlexNet(num_classes=10, split="grouped")
    torch.manual_seed(0)
    towers = AlexNet(num_classes=10, split="two_gpu", devices=("cpu", "cpu"))
    assert n_params(towers) == n_params(grouped)
    assert {k: v.shape for k, v in towers.state_dict().items()} == {k: v.shape for k, v in grouped.state_dict().items()}
    x = torch.randn(3, 3, 224, 224)
    grouped.eval(), towers.eval()
    out_g, out_t = grouped(x), towers(x)
    torch.testing.assert_close(out_t, out_g, rtol=1e-5, atol=1e-5)
    # the gradients agree too, layer by layer; in float64, since in float32 the two sum conv2's gradient (over
    # 3 x 27 x 27 positions) in different orders: on an AVX2 CPU 4e-5 apart at a largest gradient of 7e-3, both
    # 0.5% from the float64 value, while in float64 they agree to 1e-16
    double_g, double_t = copy.deepcopy(grouped).double(), copy.deepcopy(towers).double()
    double_g(x.double()).square().sum().backward()
    double_t(x.double()).square().sum().backward()
    conv2 = double_t.features.conv2
    torch.testing.assert_close(
        torch.cat([conv2.weight_a.grad, conv2.weight_b.grad]), double_g.features.conv2.weight.grad
    )
    # checkpoints go both ways
    other = AlexNet(num_classes=10, split="grouped").eval()
    other.load_state_dict(towers.state_dict())
    torch.testing.assert_close(other(x), out_t.detach(), rtol=1e-5, atol=1e-5)
    fresh = AlexNet(num_classes=10, split="two_gpu", devices=("cpu", "cpu")).eval()
    fresh.load_state_dict(grouped.state_dict())
    torch.testing.assert_close(fresh(x), out_g.detach(), rtol=1e-5, atol=1e-5)


def test_two_gpu_without_gpus_suggests_grouped():
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs")
    with pytest.raises(ValueError, match="split=grouped"):
        AlexNet(split="two_gpu")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=9), "depth"),
        (dict(activation="gelu"), "activation"),
        (dict(lrn="on"), "lrn"),
        (dict(pooling="avg"), "pooling"),
        (dict(split="quad"), "split"),
        (dict(init="xavier"), "init"),
        (dict(dropout=1.5), "dropout"),
        (dict(widths=(96, 256)), "widths"),
        (dict(widths=(95, 256, 384, 384, 256)), "even"),
    ],
)
def test_invalid_switches_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlexNet(**kwargs)


def _tiny_module(**speed):
    from functools import partial

    from alexlab.module import AlexNetModule

    torch.manual_seed(0)
    network = AlexNet(num_classes=4, in_channels=1, input_size=16, widths=[8, 8, 8, 8, 8], fc_width=16,
                      stem_kernel=3, stem_stride=1, stem_padding=1, adaptive_pool=False)  # fmt: skip
    return AlexNetModule(network, 4, partial(torch.optim.SGD, lr=0.01), {"name": "constant"}, **speed)


def _forward_backward(module, x):
    module.zero_grad(set_to_none=True)
    out = module(x)
    out.square().mean().backward()
    return out.detach(), {name: p.grad.clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("speed", [{"channels_last": True}, {"compile": True}], ids=["channels_last", "compile"])
def test_speed_switches_change_neither_values_nor_parameter_names(speed):
    """channels_last and compile (TorchInductor, compiled for real: ~20 s on 2 cores) give the plain network's
    outputs and gradients, and the same state_dict keys (checkpoints load either way)."""
    x = torch.randn(3, 1, 16, 16)
    plain, fast = _tiny_module(), _tiny_module(**speed)
    assert list(fast.state_dict()) == list(plain.state_dict())
    # eval mode: dropout off (a compiled graph draws its dropout masks from another generator than eager mode)
    out, grads = _forward_backward(plain.eval(), x)
    fast_out, fast_grads = _forward_backward(fast.eval(), x)
    torch.testing.assert_close(fast_out, out, atol=1e-5, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(fast_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    if speed.get("channels_last"):
        assert fast.model.features.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_speed_switches_must_be_booleans():
    with pytest.raises(ValueError, match="compile must be true or false"):
        _tiny_module(compile="maybe")


def test_epoch_metrics_cover_every_step_and_reset_between_epochs():
    """The module hands its metric objects to Lightning once per epoch: the epoch's train/loss must still be the
    mean over all of its steps (not the first step's), and start afresh each epoch."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class StepLosses(L.Callback):
        def __init__(self):
            self.steps, self.epochs = [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append(float(outputs["loss"]))

        def on_train_epoch_end(self, trainer, pl_module):
            self.epochs.append((sum(self.steps) / len(self.steps), float(trainer.callback_metrics["train/loss"])))
            self.steps = []

    module, losses = _tiny_module(), StepLosses()
    data = TensorDataset(torch.randn(40, 1, 16, 16), torch.randint(0, 4, (40,)))
    trainer = L.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[losses])  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=8))
    assert len(losses.epochs) == 3
    for mean_of_steps, logged in losses.epochs:
        assert logged == pytest.approx(mean_of_steps, rel=1e-5)
    assert losses.epochs[0][1] != pytest.approx(losses.epochs[2][1], rel=1e-3)  # trained: the epochs differ


def test_the_loss_metric_weights_batches_by_their_images_and_counts_nan_as_infinite():
    """An epoch's loss is the mean over its images (a last, smaller batch weighs less), and a NaN loss makes it
    infinite, a diverged run, without torchmetrics' warning line (nan_strategy="disable" lost the weights)."""
    import warnings

    metric = _tiny_module().metrics["train_loss"]
    metric.update(torch.tensor(1.0), weight=3)
    metric.update(torch.tensor(2.0), weight=1)
    assert float(metric.compute()) == pytest.approx(1.25)
    metric.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update(torch.tensor(float("nan")), weight=2)
        metric.update(torch.tensor(1.0), weight=2)
    assert float(metric.compute()) == float("inf")
