"""AlexNet (Krizhevsky, Sutskever, Hinton 2012) with every ablation switch as a constructor argument.

Read top to bottom, `AlexNet.__init__` is the whole network. The paper's layout (defaults below):

    conv1 96 11x11/4 -> ReLU -> LRN -> max-pool 3/2        (towers see the whole image)
    conv2 256 5x5 p2  -> ReLU -> LRN -> max-pool 3/2        (own tower only: groups=2)
    conv3 384 3x3 p1  -> ReLU                               (both towers: the first crossing)
    conv4 384 3x3 p1  -> ReLU                               (own tower only)
    conv5 256 3x3 p1  -> ReLU -> max-pool 3/2               (own tower only)
    fc6 4096 -> ReLU -> dropout, fc7 4096 -> ReLU -> dropout, fc8 num_classes   (both towers)

Constant choices, named once here because the paper leaves them open:
- LRN: `lrn="paper"` is the formula as printed, b = a / (2 + 1e-4 * sum over 5 maps of a^2)^0.75.
  PyTorch's nn.LocalResponseNorm divides alpha by the window size, so that is alpha=5e-4 there.
  `lrn="caffe"` is what cuda-convnet and Caffe compute (alpha 1e-4 on the mean, nn.LocalResponseNorm(5, 1e-4)).
  In the two-tower layouts LRN runs inside each tower, as it did on each of the paper's two GPUs.
- conv1 padding: the paper's 224 does not divide (224 - 11) / 4 + 1; cuda-convnet pads to 227 with ceil
  arithmetic, Caffe crops 227. With `stem_padding=None` conv1 pads just enough for the input to reach 227,
  so 224 (padding 2) and 227 (padding 0) both give 55-27-13-13-13-6.
- Pooling: the paper compares overlapping pooling (3x3 windows, stride 2) with plain pooling (2x2, stride 2) at
  maps of 55, 27 and 13, odd sizes where both give 27, 13 and 6: the same network but for the windows' overlap. At
  an even size plain pooling would give one more row and column (28 -> 14 where overlapping gives 13, and 713,866
  parameters instead of 550,026 in model=small at 28 px, through fc6's wider input), a comparison of capacity, not
  of overlap. So `pooling="plain"` keeps the overlapping pooling's map size, floor((n - 3) / 2) + 1, at every input
  size: at an even size its last row and column, which the overlapping windows leave out too, are left out.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from alexlab.errors import BadValue
from alexlab.model.layers import MaxPool, StemConv, TowerLRN
from alexlab.model.split import TwoDeviceLayer, check_devices

SPLITS = ("grouped", "single", "half", "two_gpu")
LRN_CHOICES = ("paper", "caffe", "off")
POOLINGS = {"overlap": (3, 2), "plain": (2, 2)}
OVERLAP = POOLINGS["overlap"]
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
DEPTHS = (3, 4, 5, 6)
DROPOUT_AT = ("outputs", "inputs")
INITS = ("paper", "he", "default")

# Which conv layers each depth keeps. The paper: "removing any of the middle convolutional layers results in a
# loss of about 2% for the top-1 performance", so depth 4 drops conv4 and depth 3 drops conv3 and conv4.
# Depth 6 adds the paper's extra sixth conv layer over the last pooling layer (Section 6.1).
CONV_LAYERS = {3: (1, 2, 5), 4: (1, 2, 3, 5), 5: (1, 2, 3, 4, 5), 6: (1, 2, 3, 4, 5, 6)}
# conv2, conv4 and conv5 see only their own tower's maps; conv1, conv3, conv6 and the FC layers see both.
OWN_TOWER_LAYERS = {2, 4, 5}


def make_lrn(kind: str, towers: int) -> TowerLRN:
    size, beta, k = 5, 0.75, 2.0
    alpha = {"paper": 1e-4 * size, "caffe": 1e-4}[kind]  # see the module docstring
    return TowerLRN(size, alpha, beta, k, towers)


class AlexNet(nn.Module):
    """The AlexNet family. Every ablation switch of the paper is an argument here.

    Args:
        num_classes: outputs of fc8.
        in_channels: image channels (3 for RGB, 1 for Fashion-MNIST).
        input_size: side of the square input crop; sets conv1's padding (see `stem_padding`) and fc6's width.
        widths: kernels of conv1..conv5 over both towers (paper 96-256-384-384-256; torchvision 64-192-384-256-256).
            conv6 (depth 6) has conv5's width.
        fc_width: neurons in fc6 and fc7 (paper 4096).
        stem_kernel, stem_stride: conv1's kernel and stride (paper 11 and 4; `model=small` uses 3 and 1 for 28-64 px).
        stem_padding: conv1's padding; None pads the input up to the paper's 227 (see the module docstring).
        depth: conv layers: 5 (paper), 4 (conv4 removed), 3 (conv3 and conv4 removed), 6 (extra conv6).
        activation: "relu" (paper) or "tanh" (the saturating unit the paper compares against).
        lrn: "paper", "caffe" or "off": LRN after the activations of conv1 and conv2.
        pooling: "overlap" (3x3 windows, stride 2, paper) or "plain" (2x2, stride 2, at overlap's map sizes).
        dropout: drop probability in the classifier (paper 0.5; 0 turns it off).
        dropout_at: "outputs" of fc6 and fc7 (paper) or "inputs" of fc6 and fc7 (torchvision).
        adaptive_pool: average-pool conv features to 6x6 before fc6, as torchvision does.
        split: "grouped": the paper's two towers on one device (groups=2 in conv2/4/5, LRN per tower);
            "two_gpu": the same towers on two devices, crossing at conv3 and the FC layers;
            "single": one tower of the full widths; "half": one tower with half the kernels in conv1-4
            (conv5 and the FC layers kept full), the paper's one-GPU comparison net.
        devices: the two devices of `split="two_gpu"` (tower A, tower B).
        init: "paper": weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6 and fc7 and 0 elsewhere;
            "he": weights N(0, gain^2 / fan_in) (He et al. 2015; gain sqrt(2) for ReLU, 5/3 for tanh), biases 0,
            fc8 N(0, 0.01) so that the first losses are log(num_classes): each layer keeps its input's scale;
            "default": PyTorch's default initialisation.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        input_size: int = 224,
        widths: Sequence[int] = (96, 256, 384, 384, 256),
        fc_width: int = 4096,
        stem_kernel: int = 11,
        stem_stride: int = 4,
        stem_padding: int | None = None,
        depth: int = 5,
        activation: str = "relu",
        lrn: str = "paper",
        pooling: str = "overlap",
        dropout: float = 0.5,
        dropout_at: str = "outputs",
        adaptive_pool: bool = False,
        split: str = "grouped",
        devices: Sequence[str] = ("cuda:0", "cuda:1"),
        init: str = "paper",
    ):
        super().__init__()
        _check_choice("depth", depth, DEPTHS)
        _check_choice("activation", activation, ACTIVATIONS)
        _check_choice("lrn", lrn, LRN_CHOICES)
        _check_choice("pooling", pooling, POOLINGS)
        _check_choice("dropout_at", dropout_at, DROPOUT_AT)
        _check_choice("split", split, SPLITS)
        _check_choice("init", init, INITS)
        if not 0.0 <= dropout < 1.0:
            raise BadValue(f"dropout must be in [0, 1), got {dropout}")
        if len(widths) != 5:
            raise BadValue(f"widths must list the 5 conv widths conv1..conv5, got {list(widths)}")
        if min(widths) < 1 or (split == "half" and min(widths[:4]) < 2):
            halved = " (>= 2 in conv1..conv4 with split=half, which halves them)" if split == "half" else ""
            raise BadValue(f"widths must be >= 1{halved}, got {list(widths)}")
        towers = 2 if split in ("grouped", "two_gpu") else 1
        if towers == 2 and any(w % 2 for w in widths):
            raise BadValue(
                f"split={split} puts half of each layer in each tower: widths must be even, got {list(widths)}"
            )
        if split == "two_gpu":
            check_devices(devices)
        self.split = split
        self.devices = tuple(devices)

        widths = list(widths) + [widths[4]]  # conv6 (depth 6) keeps conv5's width
        if split == "half":
            widths = [w // 2 for w in widths[:4]] + widths[4:]
        kernel, stride = POOLINGS[pooling]
        padding = max(0, math.ceil((227 - input_size) / 2)) if stem_padding is None else stem_padding
        act = ACTIVATIONS[activation]

        features: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for i in CONV_LAYERS[depth]:
            if i == 1:
                conv = StemConv(channels, widths[0], stem_kernel, stride=stem_stride, padding=padding)
            else:
                size = 5 if i == 2 else 3
                groups = towers if i in OWN_TOWER_LAYERS else 1
                conv = nn.Conv2d(channels, widths[i - 1], size, padding=size // 2, groups=groups)
            channels = conv.out_channels
            features[f"conv{i}"] = conv
            features[f"act{i}"] = act()
            if i in (1, 2) and lrn != "off":
                # two_gpu: each tower tensor is its own group already
                features[f"lrn{i}"] = make_lrn(lrn, towers if split == "grouped" else 1)
            if i in (1, 2, 5):  # plain pooling keeps overlapping pooling's map sizes (module docstring)
                features[f"pool{i}"] = MaxPool(kernel, stride, maps_of=None if pooling == "overlap" else OVERLAP)
        self.features = nn.Sequential(features)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6)) if adaptive_pool else nn.Identity()

        with torch.no_grad():
            probe = torch.zeros(1, in_channels, input_size, input_size)
            try:
                flat = self.avgpool(self.features(probe)).numel()
            except RuntimeError as error:  # a map smaller than conv1's kernel or a pooling window
                raise BadValue(
                    f"input_size={input_size} is too small for conv1 (kernel {stem_kernel}, stride {stem_stride}, "
                    f"padding {padding}) and three poolings={pooling}: {str(error).splitlines()[0]}"
                ) from error
        drop = (lambda: nn.Dropout(dropout)) if dropout > 0 else nn.Identity
        layers = {
            "fc6": nn.Linear(flat, fc_width), "act6": act(), "drop6": drop(),
            "fc7": nn.Linear(fc_width, fc_width), "act7": act(), "drop7": drop(),
            "fc8": nn.Linear(fc_width, num_classes),
        }  # fmt: skip
        order = {
            "outputs": ("fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"),
            "inputs": ("drop6", "fc6", "act6", "drop7", "fc7", "act7", "fc8"),
        }[dropout_at]
        self.classifier = nn.Sequential(OrderedDict((name, layers[name]) for name in order))

        # The paper's N(0, 0.01) suits its 224-px network (and even there needed biases of 1 to start learning). In a
        # narrower network each layer then shrinks its input's scale (std 0.01 x sqrt(fan_in) < 1): model=small
        # with init=paper and the paper's SGD stays at chance for epochs, with init=he it learns in the first.
        for name, layer in [*self.features.named_children(), *self.classifier.named_children()]:
            if not isinstance(layer, (nn.Conv2d, nn.Linear)) or init == "default":
                continue
            if init == "paper":
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.constant_(layer.bias, 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0)
            elif name == "fc8":  # he: small logits, so that the first loss is log(num_classes)
                nn.init.normal_(layer.weight, 0.0, 0.01)
                nn.init.zeros_(layer.bias)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity=activation)
                nn.init.zeros_(layer.bias)

        if split == "two_gpu":  # same weights, now cut into two towers on two devices
            for seq in (self.features, self.classifier):
                for name, layer in seq.named_children():
                    if isinstance(layer, (nn.Conv2d, nn.Linear)):
                        setattr(seq, name, TwoDeviceLayer(layer, self.devices))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split == "two_gpu":
            return self._forward_two_devices(x)
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def _forward_two_devices(self, x: torch.Tensor) -> torch.Tensor:
        # Carry the towers as a pair; `b is None` means `a` is still the whole image (before conv1).
        a, b = x, None
        for seq in (self.features, self.classifier):
            for layer in seq:
                if isinstance(layer, TwoDeviceLayer):
                    a, b = layer(a, b)
                else:
                    a, b = layer(a), layer(b)
            if seq is self.features:
                a, b = torch.flatten(self.avgpool(a), 1), torch.flatten(self.avgpool(b), 1)
        return torch.cat([a, b.to(a.device)], dim=1)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise BadValue(f"{name}={value!r} is not one of {', '.join(map(str, choices))}")


# torchvision.models.alexnet's state_dict names -> ours (model=torchvision builds the same layers).
TORCHVISION_NAMES = {
    "features.0": "features.conv1",
    "features.3": "features.conv2",
    "features.6": "features.conv3",
    "features.8": "features.conv4",
    "features.10": "features.conv5",
    "classifier.1": "classifier.fc6",
    "classifier.4": "classifier.fc7",
    "classifier.6": "classifier.fc8",
}


def from_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision `alexnet` state_dict so that `AlexNet(**torchvision layout).load_state_dict` takes it."""
    renamed = {}
    for key, value in state_dict.items():
        layer, _, param = key.rpartition(".")
        if layer not in TORCHVISION_NAMES:
            raise KeyError(f"{key} is not a torchvision alexnet parameter")
        renamed[f"{TORCHVISION_NAMES[layer]}.{param}"] = value
    return renamed
