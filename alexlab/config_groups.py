"""The config groups of conf/ and which of them are the paper's switches: read from the packaged conf/ tree, so that a
group added there reaches `alexlab --help`, the run record, W&B's names and tags and the report without a list to
update anywhere else.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

CONFIG_PACKAGE = "alexlab.conf"
# The packages a switch writes into: each option of a switch group sets one constructor argument of the network
# (alexlab.model.alexnet.AlexNet) or of the data module (alexlab.data.ImageDataModule), its file says which
# (`# @package model` or `# @package data`).
SWITCH_PACKAGES = ("model", "data")
# The network presets the switches apply to: a switch of its own in the report (small against paper).
PRESET = "model"
# Groups that say how a run is watched or launched, not what it computes: not part of what identifies a run.
NOT_IDENTITY = ("logger", "callbacks", "launcher")
# The group of sweeps/paper_ablations.yaml (sweeps/ablation/): each option changes one switch.
ABLATION = "ablation"


@cache
def group_options() -> dict[str, list[str]]:
    """Every config group shipped with alexlab and its options, from the packaged conf/ tree."""
    root = resources.files(CONFIG_PACKAGE)
    groups = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            options = sorted(f.name.removesuffix(".yaml") for f in entry.iterdir() if f.name.endswith(".yaml"))
            if options:
                groups[entry.name] = options
    return groups


def _package(group: str, option: str) -> str | None:
    """The `# @package NAME` line of an option's file (Hydra's package header), None without one."""
    text = resources.files(CONFIG_PACKAGE).joinpath(group, f"{option}.yaml").read_text()
    for line in text.splitlines():
        if line.startswith("# @package"):
            return line.removeprefix("# @package").strip()
        if line.strip() and not line.startswith("#"):
            return None
    return None


@cache
def switches() -> tuple[str, ...]:
    """The paper's switches: the network preset, then every group whose options each write into the network's or
    the data module's arguments (conf/config.yaml's defaults order)."""
    groups = group_options()
    order = [g for g in default_choices() if g in groups] + [g for g in groups if g not in default_choices()]
    found = [g for g in order if g != PRESET and all(_package(g, o) in SWITCH_PACKAGES for o in groups[g])]
    return (PRESET, *found)


@cache
def identity() -> tuple[str, ...]:
    """The groups whose choices identify a run (in its record and its W&B config): the switches, every other group
    of conf/ but those in NOT_IDENTITY, and a paper_ablations sweep's `ablation`."""
    rest = [g for g in group_options() if g not in switches() and g not in NOT_IDENTITY]
    return (*switches(), *rest, ABLATION)


@cache
def default_choices() -> dict[str, str]:
    """conf/config.yaml's defaults list: group -> default option."""
    defaults = yaml.safe_load(resources.files(CONFIG_PACKAGE).joinpath("config.yaml").read_text())["defaults"]
    return {k: str(v) for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}
