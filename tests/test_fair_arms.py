"""Every ablation of a named sweep changes its switch and nothing else against its sweep's baseline (paper_ablations'
`baseline`, relu_speed's figure1_relu, ...), at every network preset and input size the repository ships: the same
parameters, MACs and map sizes as the baseline's network, except where the paper's comparison is meant to change
them (the half-width one-GPU net; a removed layer). Built from the composed configs as `alexlab sweep NAME model=...
data=...` composes them, on the meta device."""

from functools import cache
from importlib import resources

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

from alexlab.config_groups import CONFIG_PACKAGE, group_options, switches
from alexlab.info import layer_table
from alexlab.report.claims import claims_about
from alexlab.sweep import SWEEPS_PACKAGE

PRESETS = group_options()["model"]
ABLATIONS = sorted(p.name.removesuffix(".yaml") for p in resources.files(SWEEPS_PACKAGE).joinpath("ablation").iterdir()
                   if p.name.endswith(".yaml"))  # fmt: skip


def sweep_arms() -> dict[str, tuple[str, list[str]]]:
    """Each named sweep with an `+ablation` axis -> (its baseline, its ablations): the axis of sweeps/NAME.yaml, the
    baseline its hydra.sweeper.baseline names (`baseline` without one, else the axis's first). The ablation options
    that no sweep lists (for a sweep of the user's own) count as arms of paper_ablations."""
    arms = {}
    for path in sorted(resources.files(SWEEPS_PACKAGE).iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yaml"):
            continue
        sweeper = yaml.safe_load(path.read_text())["hydra"]["sweeper"]
        axis = str((sweeper.get("params") or {}).get("+ablation") or "")
        if axis:
            ablations = axis.split(",")
            baseline = str(sweeper.get("baseline") or "ablation=baseline").removeprefix("ablation=")
            arms[path.name.removesuffix(".yaml")] = (baseline if baseline in ablations else ablations[0], ablations)
    listed = {ablation for _, ablations in arms.values() for ablation in ablations}
    arms["paper_ablations"][1].extend(sorted(set(ABLATIONS) - listed))
    return arms


SWEEP_ARMS = sweep_arms()


def input_shapes() -> dict[tuple, str]:
    """(channels, image size) of every data config shipped in conf/data -> the first config with it: the networks'
    inputs that the repository ships, one data config each."""
    shapes, to_fill = {}, {}
    for name in group_options()["data"]:
        text = resources.files(CONFIG_PACKAGE).joinpath("data", f"{name}.yaml").read_text()
        data = yaml.safe_load(text)
        # a config with values to fill in (imagefolder's num_classes: ???) stands for its shape only if none else does
        (to_fill if "???" in text else shapes).setdefault((data["channels"], data["image_size"]), name)
    assert set(to_fill) <= set(shapes), f"input shapes only a config with ??? values ships: {to_fill}"
    return shapes


DATA = sorted(input_shapes().values())


@cache
def composed(sweep: str, ablation: str, preset: str, data: str):
    with initialize_config_module(SWEEPS_PACKAGE, version_base="1.3"):
        cfg = compose(sweep, [f"+ablation={ablation}", f"model={preset}", f"data={data}"],
                      return_hydra_config=True)  # fmt: skip
    choices = {group: cfg.hydra.runtime.choices.get(group) for group in switches()}
    return choices, OmegaConf.to_container(cfg.model, resolve=True)


@cache
def network(model: tuple) -> tuple[int, int, dict]:
    """(parameters, MACs, the map size after each convolution, pooling and fully connected layer) of the network a
    model config builds."""
    config = dict(model)
    with torch.device("meta"):
        net = instantiate({**config, "widths": list(config["widths"])})
    rows = layer_table(net, config["in_channels"], config["input_size"])
    kinds = ("StemConv", "Conv2d", "MaxPool", "Linear", "AdaptiveAvgPool2d")
    maps = {r.name: r.output_shape for r in rows if r.kind in kinds}
    return sum(p.numel() for p in net.parameters()), sum(r.macs for r in rows), maps


def frozen(model: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in model.items()))


def test_the_ablations_and_inputs_are_the_ones_shipped():
    assert "baseline" in ABLATIONS and len(ABLATIONS) >= 8
    assert SWEEP_ARMS["relu_speed"] == ("figure1_relu", ["figure1_relu", "figure1_tanh"])
    assert {a for _, ablations in SWEEP_ARMS.values() for a in ablations} == set(ABLATIONS)
    assert set(input_shapes()) >= {(1, 28), (3, 32), (3, 256)}  # Fashion-MNIST, CIFAR and the built-in shapes, ImageNet


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("sweep", sorted(SWEEP_ARMS))
def test_every_ablation_changes_its_switch_and_nothing_else(sweep, preset, data):
    baseline, ablations = SWEEP_ARMS[sweep]
    base_choices, base_model = composed(sweep, baseline, preset, data)
    base_size = network(frozen(base_model))
    for ablation in ablations:
        choices, model = composed(sweep, ablation, preset, data)
        changed = [group for group in choices if choices[group] != base_choices[group]]
        assert len(changed) <= 1, f"{ablation} changes {changed}"
        if not changed:
            continue
        (switch,) = changed
        claims = claims_about(switch, base_choices[switch], choices[switch])
        size = network(frozen(model))
        where = f"{sweep}: {ablation} at model={preset} data={data}"
        if any(claim.resizes for claim in claims):
            assert size[:2] != base_size[:2], f"{where}: meant to change the network's size, and does not"
        else:
            assert size == base_size, f"{where}: {size[:2]} against the baseline's {base_size[:2]}"
