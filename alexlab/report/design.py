"""How a seed rounds sweep decided its claims (hydra.sweeper in its multirun.yaml): its looks, margins, thresholds and
baseline, so that `alexlab report` on its directory later reads the runs as the sweep's stopping rule did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from alexlab.errors import BadFile, first_line
from alexlab.stats import Looks


@dataclass(frozen=True)
class Design:
    """How a seed rounds sweep decides its claims (hydra.sweeper in its multirun.yaml), so that `alexlab report` on
    its directory later reads the runs as the sweep's stopping rule did."""

    looks: Looks = Looks()  # seed rounds after which it may have stopped on its verdicts (seeds=auto), else one
    margin: float | None = None  # the report options its verdicts used; None: the report's defaults
    ratio_margin: float | None = None
    threshold: float | list[float] | None = None  # or several: the speed claims read at each
    baseline: str | None = None  # KEY=VALUE[,...] of the row the others are compared with
    claims: list | None = None  # the names of the claims the sweep is for (claims.claim_names); None: every claim


def sweep_design(multirun_yaml: Path) -> Design:
    """The Design of the sweep that saved `multirun_yaml`: for seeds=auto (hydra_plugins/alexlab_seed_rounds), a
    look after each round from min_seeds to max_seeds; a sweep of fixed seeds looks once. Any other sweep, or a file
    that cannot be read, has the default Design; a value that cannot be read (an unresolvable ${seeds}) its default,
    the others kept."""
    try:
        sweeper = OmegaConf.select(OmegaConf.load(multirun_yaml), "hydra.sweeper", default=None)
    except UNREADABLE:
        return Design()
    if sweeper is None or not str(sweeper.get("_target_", "")).endswith("SeedRoundsSweeper"):
        return Design()
    auto = _read(lambda: str(sweeper.seeds) == "auto")
    span = _read(lambda: (int(sweeper.min_seeds), int(sweeper.max_seeds))) if auto else None
    looks = Looks(*span) if span and 1 <= span[0] <= span[1] else Looks()
    options = {key: _read(lambda key=key: float(sweeper[key])) for key in ("margin", "ratio_margin")}
    threshold = _read(lambda: _plain(sweeper.get("threshold")))
    baseline = _read(lambda: sweeper.get("baseline"))
    try:  # which claims the sweep's error rate was shared among: never guessed ("every claim") where unreadable
        claims = _plain(sweeper.get("claims"))
    except UNREADABLE as error:
        raise BadFile(f"{multirun_yaml}: hydra.sweeper.claims cannot be read ({first_line(error)})") from error
    return Design(looks, **options, threshold=threshold if isinstance(threshold, (int, float, list)) else None,
                  baseline=str(baseline) if baseline else None, claims=claims)  # fmt: skip


UNREADABLE = (OSError, ValueError, TypeError, yaml.YAMLError, OmegaConfBaseException)


def _plain(value):
    """A config value as plain Python, its own interpolations resolved (not the whole block's)."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _read(value):
    """value(), or None where it is unset or cannot be read."""
    try:
        return value()
    except UNREADABLE:
        return None
