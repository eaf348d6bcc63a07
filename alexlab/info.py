"""`alexlab info`: the composed network as a table of layers, output shapes, parameters and MACs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int  # multiply-accumulates per image; weights x output positions for conv and FC, 0 elsewhere


def layer_table(model: nn.Module, in_channels: int, input_size: int) -> list[LayerRow]:
    """Run one image through a single-device `model` and record each layer of its features and classifier."""
    rows: list[LayerRow] = []

    def record(name: str):
        def hook(layer: nn.Module, inputs, output) -> None:
            weights = [p for n, p in layer.named_parameters() if n.startswith("weight")]
            positions = output[0, 0].numel() if output.ndim == 4 else 1
            rows.append(
                LayerRow(
                    name=name,
                    kind=type(layer).__name__,
                    output_shape=tuple(output.shape[1:]),
                    params=sum(p.numel() for p in layer.parameters()),
                    macs=sum(w.numel() for w in weights) * positions,
                )
            )

        return hook

    layers = [(f"features.{name}", layer) for name, layer in model.features.named_children()]
    if not isinstance(model.avgpool, nn.Identity):
        layers.append(("avgpool", model.avgpool))
    layers += [(f"classifier.{name}", layer) for name, layer in model.classifier.named_children()]
    handles = [layer.register_forward_hook(record(name)) for name, layer in layers]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device  # a network on the meta device is sized without memory or arithmetic
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows


def network_size(model_config: dict) -> tuple[int, int]:
    """(parameters, MACs per image) of the network a run's `model` config builds (alexlab.model.alexnet.AlexNet's
    arguments with its `_target_`), built on the meta device: no weights are allocated. split=two_gpu counts as its
    one-device twin, split=grouped (the same layers)."""
    from hydra.utils import instantiate

    config = dict(model_config)
    if config.get("split") == "two_gpu":
        config["split"] = "grouped"
    with torch.device("meta"):
        model = instantiate(config)
    rows = layer_table(model, config["in_channels"], config["input_size"])
    return sum(p.numel() for p in model.parameters()), sum(row.macs for row in rows)


def print_table(rows: list[LayerRow], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("layer", "type", "output", "params", "MACs"):
        table.add_column(column, justify="right" if column in ("params", "MACs") else "left")
    for row in rows:
        table.add_row(row.name, row.kind, "x".join(map(str, row.output_shape)), f"{row.params:,}", f"{row.macs:,}")
    params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    table.add_section()
    table.add_row("total", "", "", f"{params:,}", f"{macs:,} ({macs / 1e9:.3f} G)")
    Console(width=120).print(table)
