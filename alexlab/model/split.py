"""The paper's two-GPU model parallelism: each conv/FC layer cut into tower A (device 0) and tower B (device 1).

A layer built with groups=2 (conv2, conv4, conv5 in the paper) becomes two convs that each see only their own
tower's maps; any other layer becomes two halves that each see the maps of both towers, which is where
activations cross between the devices. Tower A holds the first half of the output channels, as in the
grouped (`groups=2`) layer, so the two layouts compute the same function with the same weights.

The state_dict keeps the grouped layer's `weight` and `bias` names and shapes, so a checkpoint saved from two
devices loads into `split=grouped` on one and back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from alexlab.errors import BadValue


def check_devices(devices: Sequence[str]) -> None:
    if len(devices) != 2:
        raise BadValue(f"split=two_gpu needs exactly two devices, got {list(devices)}")
    cuda = [torch.device(d) for d in devices if torch.device(d).type == "cuda"]
    needed = max((d.index or 0 for d in cuda), default=-1) + 1
    available = torch.cuda.device_count()
    if needed > available:
        raise BadValue(
            f"split=two_gpu places the towers on {', '.join(devices)} but this machine has {available} GPU(s); "
            "use split=grouped for the same network on one device"
        )


class TwoDeviceLayer(nn.Module):
    """A Conv2d or Linear layer cut by output channels into tower A on devices[0] and tower B on devices[1]."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, devices: Sequence[str]):
        super().__init__()
        self.devices = [torch.device(d) for d in devices]
        self.is_conv = isinstance(layer, nn.Conv2d)
        self.own_tower = self.is_conv and layer.groups == 2
        if self.is_conv:
            if layer.groups not in (1, 2):
                raise BadValue(f"a two-tower conv has groups 1 or 2, got {layer.groups}")
            self.conv_args = {"stride": layer.stride, "padding": layer.padding}
        half = layer.weight.shape[0] // 2 + layer.weight.shape[0] % 2
        self.weight_a = nn.Parameter(layer.weight.detach()[:half].to(self.devices[0]))
        self.weight_b = nn.Parameter(layer.weight.detach()[half:].to(self.devices[1]))
        self.bias_a = nn.Parameter(layer.bias.detach()[:half].to(self.devices[0]))
        self.bias_b = nn.Parameter(layer.bias.detach()[half:].to(self.devices[1]))

    def _layer(self, x, weight, bias):
        if self.is_conv:
            return F.conv2d(x, weight, bias, **self.conv_args)
        return F.linear(x, weight, bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        dev_a, dev_b = self.devices
        if b is None:  # the first layer: both towers see the whole input
            in_a, in_b = a.to(dev_a), a.to(dev_b)
        elif self.own_tower:
            in_a, in_b = a, b
        else:  # the crossing: each tower receives the other's maps
            in_a = torch.cat([a, b.to(dev_a)], dim=1)
            in_b = torch.cat([a.to(dev_b), b], dim=1)
        return self._layer(in_a, self.weight_a, self.bias_a), self._layer(in_b, self.weight_b, self.bias_b)

    def _apply(self, fn, recurse=True):
        # Lightning moves the whole module to one root device; the towers stay where the split put them.
        super()._apply(fn, recurse)
        for name, device in (("weight_a", 0), ("bias_a", 0), ("weight_b", 1), ("bias_b", 1)):
            param = getattr(self, name)
            param.data = param.data.to(self.devices[device])
            if param.grad is not None:
                param.grad.data = param.grad.data.to(self.devices[device])
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name in ("weight", "bias"):
            a, b = getattr(self, f"{name}_a"), getattr(self, f"{name}_b")
            if not keep_vars:
                a, b = a.detach(), b.detach()
            destination[prefix + name] = torch.cat([a, b.to(a.device)])

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        for name in ("weight", "bias"):
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            a, b = getattr(self, f"{name}_a"), getattr(self, f"{name}_b")
            value = state_dict[key]
            if value.shape[0] != a.shape[0] + b.shape[0] or value.shape[1:] != a.shape[1:]:
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(value.shape)}, "
                    f"the two towers together have shape {(a.shape[0] + b.shape[0], *a.shape[1:])}"
                )
                continue
            with torch.no_grad():
                a.copy_(value[: a.shape[0]])
                b.copy_(value[a.shape[0] :])
