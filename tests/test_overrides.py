# ruff: noqa: UP007, UP045  (typing.Union and Optional: the spelling of the annotations under test)
"""How an override's value is checked against what it configures (alexlab/overrides.py): a `_target_`'s argument
by its annotation, NaN and infinities refused everywhere, interpolations resolved as the job would resolve them."""

import math
from collections.abc import Sequence
from typing import Literal, Optional, Union

import pytest
from hydra import compose, initialize_config_module

from alexlab.errors import BadValue
from alexlab.overrides import accepts, annotation, check_value, describe, finite

COUNT_OR_FRACTION = Optional[int | float]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (COUNT_OR_FRACTION, 4, True),
        (COUNT_OR_FRACTION, 1.0, True),
        (COUNT_OR_FRACTION, None, True),
        (COUNT_OR_FRACTION, "abc", False),
        (COUNT_OR_FRACTION, True, False),  # a bool is no number here, though Python's bool is an int
        (int, 1.5, False),
        (float, 2, True),  # an integer is a number
        (Literal[64, 32, 16], 32, True),
        (Literal[64, 32, 16], "32", False),  # Lightning's string spellings are Literals of their own
        (Union[Literal[64, 32], Literal["32-true", "32"]], "32", True),
        (Sequence[int], [1, 2], True),
        (Sequence[int], "ab", None),  # a word is a sequence too: not checked here
        (dict, {"a": 1}, True),
        (list, 3, False),
        (Union[str, object], 3, None),  # a class this cannot judge: the config's value decides
        (None, 3, None),
    ],
)
def test_accepts_reads_an_annotation(kind, value, expected):
    assert accepts(kind, value) is expected


def test_describe_says_an_annotation_in_words():
    assert describe(COUNT_OR_FRACTION) == "an integer, a number or null"
    assert describe(Union[Literal[64, 32], Literal["64", "bf16"], None]) == "one of 64, 32, bf16 or null"
    assert describe(int) == "an integer"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, True),
        (math.nan, False),
        (-math.inf, False),
        ([1, math.nan], False),
        ({"a": math.inf}, False),
        ("nan", True),
    ],
)
def test_finite(value, expected):
    assert finite(value) is expected


@pytest.fixture(scope="module")
def smoke():
    with initialize_config_module("alexlab.conf", version_base="1.3"):
        return compose("config", overrides=["experiment=smoke"])


def test_annotation_follows_the_nodes_target(smoke):
    assert annotation(smoke, "trainer.limit_test_batches") == Union[int, float, None]
    assert annotation(smoke, "data.batch_size") is int  # alexlab.data.ImageDataModule
    assert annotation(smoke, "seed") is None  # no _target_ takes it
    assert annotation(smoke, "trainer.no_such_argument") is None


@pytest.mark.parametrize(
    ("name", "value", "refused"),
    [
        ("trainer.limit_test_batches", 1.0, None),  # the preset sets 4; Lightning takes a fraction too
        ("trainer.limit_train_batches", "all", "takes an integer, a number or null"),
        ("trainer.devices", "auto", None),  # Union[list[int], str, int]
        ("trainer.precision", 33, "takes one of 64, 32, 16"),
        ("trainer.gradient_clip_val", "abc", "takes an integer, a number or null"),
        ("data.batch_size", 1.5, "takes an integer"),
        ("seed", 1.5, r"seed takes an integer \(the config's is 0"),  # no annotation: the config's value decides
        ("optimizer.lr", math.nan, "takes a finite number, not NaN or infinity"),
        ("trainer.max_epochs", math.inf, "takes a finite number"),
        ("ckpt_path", 1, "takes a checkpoint's path"),  # null in the config: its value cannot say
        ("ckpt_path", True, "takes a checkpoint's path"),
        ("ckpt_path", "runs/x/checkpoints/last.ckpt", None),
    ],
)
def test_check_value(smoke, name, value, refused):
    from omegaconf import OmegaConf

    default = OmegaConf.select(smoke, name)
    if refused is None:
        check_value(name, name, str(value), value, default, smoke)
        return
    with pytest.raises(BadValue, match=refused):
        check_value(name, name, str(value), value, default, smoke)


def recorded_calls(monkeypatch, method: str) -> list[tuple]:
    """The arguments of each call of Hydra's ConfigLoaderImpl.`method` from here on (the method itself still runs)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    calls, real = [], getattr(ConfigLoaderImpl, method)

    def recorded(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, method, recorded)
    return calls


def test_the_check_composes_each_config_it_reads_once(monkeypatch):
    """Beyond the master: every other option of each group axis, the config under the chosen groups that the values
    are checked against, and a sweep's first job. A single run of groups alone needs none of them (its master
    composed its groups); a sweep of groups alone composes its first job once (it is the config under its groups)."""
    from alexlab.overrides import check_overrides

    composed = recorded_calls(monkeypatch, "load_sweep_config")  # (master, overrides) each
    cases = {
        ("experiment=smoke", "model=paper"): [],
        ("experiment=smoke", "trainer.max_epochs=1"): [["experiment=smoke"]],
        ("-m", "experiment=smoke", "dropout=on,off"): [
            ["experiment=smoke", "dropout=off"], ["experiment=smoke", "dropout=on"],
        ],
        ("-m", "experiment=smoke", "dropout=on,off", "seed=0,1"): [
            ["experiment=smoke", "dropout=off", "seed='0'"], ["experiment=smoke", "dropout=on"],
            ["experiment=smoke", "dropout=on", "seed='0'"],  # (a number quoted: as_override)
        ],
    }  # fmt: skip
    for argv, expected in cases.items():
        composed.clear()
        check_overrides(list(argv))
        assert [sorted(overrides) for _, overrides in composed] == [sorted(o) for o in expected], argv
    with pytest.raises(BadValue, match="trainer.max_epochs takes an integer"):  # the values are still checked
        check_overrides(["experiment=smoke", "model=paper", "trainer.max_epochs=x"])


def test_groups_are_told_from_values_as_hydra_composed_them(monkeypatch):
    """check_overrides asks the search path whether a key is a group (get_group_options, which reloads the primary
    config each time) only for a sweep's axes, which the composed master leaves out; an override Hydra applied is a
    group exactly when its defaults list chose it (hydra.runtime.choices). Each is still checked as what it is."""
    from hydra.errors import MissingConfigException

    from alexlab.overrides import check_overrides

    asked = recorded_calls(monkeypatch, "get_group_options")  # (group,) each
    master = check_overrides(["experiment=smoke", "model=paper", "optimizer=adamw", "trainer.max_epochs=1"])
    assert master.model.init == "he" and master.trainer.max_epochs == 1 and asked == []
    with pytest.raises(BadValue, match="optimizer.lr takes a number"):  # a value under a chosen group's option
        check_overrides(["experiment=smoke", "optimizer=adamw", "optimizer.lr=abc"])
    with pytest.raises(MissingConfigException, match="model/sideways"):  # Hydra's own error: one line from user_error
        check_overrides(["experiment=smoke", "model=sideways"])
    assert asked == []
    check_overrides(["-m", "experiment=smoke", "dropout=on,off", "seed=0,1", "trainer.max_epochs=1"])
    # the sweep's axes: dropout is a group the defaults list chose, seed is asked about
    assert [group for group, *_ in asked] == ["seed"]
    with pytest.raises(BadValue, match="seed takes an integer"):
        check_overrides(["-m", "experiment=smoke", "dropout=on,off", "seed=0,x"])
    with pytest.raises(MissingConfigException, match="dropout/sideways"):  # each option of a group axis composes
        check_overrides(["-m", "experiment=smoke", "dropout=on,sideways"])
