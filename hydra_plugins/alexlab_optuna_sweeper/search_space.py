"""The search space of an Optuna sweep: Hydra's sweep syntax and the config's `params` as Optuna distributions,
sampled values as overrides, and a grid of a space that has one (the official hydra-optuna-sweeper's parsing)."""

from __future__ import annotations

import logging
import re
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override, QuotedString, RangeSweep, Transformer
from hydra.errors import OverrideParseException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from alexlab.errors import BadValue
from hydra_plugins.alexlab_optuna_sweeper.config import DistributionConfig, DistributionType

log = logging.getLogger(__name__)


def parse_search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Sweep overrides become Optuna distributions, keyed by the override's key; plain overrides stay as they are
    (name -> the override's text) and go to every trial. A later override of the same key replaces an earlier one.
    A param that does not parse is refused in one line naming it."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()][1:2] or ["syntax error"]
            raise BadValue(f"cannot parse the sweep param '{text}': {reason[0].strip()}") from None
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            try:
                space[key] = create_optuna_distribution_from_override(override)
            except ValueError as exc:
                raise BadValue(f"sweep param '{text}': {str(exc).strip()}") from None
        else:
            fixed[key] = text
    return space, fixed


def create_params_from_overrides(arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """The official plugin's split of overrides: (name -> distribution, name -> the fixed value as a string)."""
    space, fixed = parse_search_space(arguments)
    return space, {name: text.partition("=")[2] for name, text in fixed.items()}


def create_optuna_distribution_from_override(override: Override) -> Any:
    """A sweep override as an Optuna distribution, as the official plugin reads each expression:
    choice(...) and a,b,c: categorical; shuffle(...): categorical; range(a, b[, step]): ints from a to b, *b
    included* (floats when any of the three is one); interval(a, b): floats, ints when cast (int(interval(1, 5)));
    tag(log, ...): the same on a log scale. A plain override gives its value as a string."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if isinstance(value, Glob):
        raise ValueError("glob() is not supported by the Optuna sweeper; list the options")
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution([choice_value(x) for x in override.sweep_iterator()])
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        start, stop, step = value.start, value.stop, value.step
        if step < 0:  # range(5, 1, -2): the same values as range(1, 5, 2) walked backwards
            start, stop, step = stop, start, -step
        if start > stop:
            raise ValueError("the range is empty")
        if any(isinstance(x, float) for x in (start, stop, step)):
            return FloatDistribution(start, stop, step=step)
        return IntDistribution(int(start), int(stop), step=int(step))
    assert isinstance(value, IntervalSweep)
    log_scale = "log" in value.tags
    if isinstance(value.start, int) and isinstance(value.end, int):
        return IntDistribution(value.start, value.end, log=log_scale)
    return FloatDistribution(value.start, value.end, log=log_scale)


def create_optuna_distribution_from_config(config: Any) -> BaseDistribution:
    """One entry of Hydra 1.1's search_space ({type, choices, low, high, step, log}) as an Optuna distribution."""
    entry = dict(config)
    if isinstance(entry.get("type"), str):
        entry["type"] = DistributionType[entry["type"]]
    param = DistributionConfig(**entry)
    if param.type == DistributionType.categorical:
        return CategoricalDistribution(param.choices)
    if param.low is None or param.high is None:
        raise BadValue(f"hydra.sweeper.search_space: a {param.type.name} entry needs low and high, got {entry}")
    if param.type == DistributionType.int:
        if param.log:
            return IntDistribution(int(param.low), int(param.high), log=True)
        return IntDistribution(int(param.low), int(param.high), step=int(param.step or 1))
    return FloatDistribution(param.low, param.high, log=param.log, step=None if param.log else param.step)


def choice_value(element: Any) -> Any:
    """A categorical choice as Optuna stores it: numbers and bools as they are, anything else in override syntax
    (so that `name=<choice>` gives the job exactly that value: '5' stays the string 5, [1,2] a list)."""
    if isinstance(element, QuotedString):
        element = element.text
    if isinstance(element, (bool, int, float)):
        return element
    if isinstance(element, str):
        return element if is_plain_string(element) else quote(element)
    return Transformer.str(element)


def is_plain_string(text: str) -> bool:
    """A string that Hydra reads back as the same string without quotes (sgd, val/top1_err, flip_crop)."""
    keywords = ("true", "false", "null", "nan", "inf")
    return bool(re.fullmatch(r"[A-Za-z_][\w\-./]*", text)) and text.lower() not in keywords


def quote(text: str) -> str:
    """`text` as a Hydra quoted string: quotes escaped, and the backslashes before a quote or at the end doubled."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{escaped}'"


def override_value(value: Any) -> str:
    """A trial's param value in override syntax (strings are already in it: see choice_value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Ask the trial for a value through the public suggest API (which also serves enqueued params)."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    low, high, step, log_scale = distribution.low, distribution.high, distribution.step, distribution.log
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, low, high, step=step, log=log_scale)
    return trial.suggest_float(name, low, high, step=step, log=log_scale)


def grid_of(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The GridSampler's grid, as the official plugin builds it: the choices, or a range's values from its start up
    to its stop *excluded* (the values Hydra's basic sweeper runs; the sampled distribution includes the stop)."""
    grid = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[name] = list(distribution.choices)
        elif isinstance(distribution, (IntDistribution, FloatDistribution)) and distribution.step is not None:
            n = int((distribution.high - distribution.low) // distribution.step)
            grid[name] = [distribution.low + i * distribution.step for i in range(n)]
            if not grid[name]:
                raise BadValue(f"hydra/sweeper/sampler=grid: the range of '{name}' holds no value below its stop")
        else:
            raise BadValue(
                f"hydra/sweeper/sampler=grid needs discrete params (choice, a,b,c or range); '{name}' is an interval"
            )
    return grid
