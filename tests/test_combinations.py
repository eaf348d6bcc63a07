"""Every combination of the switches: hypothesis draws depth, dropout, lrn, pooling, activation, split, init, model
size and input size, composes them through the real config groups, and checks that a valid one builds and trains
(a forward and a backward pass with a finite loss) and that an invalid one fails with a ValueError naming the switch.
"""

import math

import pytest
import torch
from hydra import compose, initialize_config_module
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from alexlab.model.alexnet import AlexNet

# model=...: conv1's kernel, stride and padding (None: up to 227), and input sizes worth drawing (hypothesis prefers
# the first of a list: the valid ones come first, so that about half of the examples train)
MODELS = {
    "small": (3, 1, 1, st.sampled_from([32, 28, 64, 13, 8, 7, 4])),
    "paper": (11, 4, None, st.sampled_from([224, 227, 63, 31, 8])),
    "torchvision": (11, 4, 2, st.sampled_from([224, 63, 31, 5])),
}
POOLING = {"overlap": (3, 2), "plain": (2, 2)}


def widths(*choices: int):
    return st.lists(st.sampled_from(choices), min_size=5, max_size=5)


@st.composite
def switches(draw) -> dict:
    model = draw(st.sampled_from(sorted(MODELS)))
    return {
        "model": model,
        "depth": draw(st.sampled_from(["3", "4", "5", "6"])),
        "dropout": draw(st.sampled_from(["on", "off"])),
        "lrn": draw(st.sampled_from(["on", "off", "caffe"])),
        "pooling": draw(st.sampled_from(["overlap", "plain"])),
        "activation": draw(st.sampled_from(["relu", "tanh"])),
        "split": draw(st.sampled_from(["grouped", "single", "half", "two_gpu"])),
        "init": draw(st.sampled_from(["paper", "default"])),
        "input_size": draw(MODELS[model][3]),
        # the model's own widths, or small ones (odd ones cannot be halved into two towers)
        "widths": draw(st.none() | widths(2, 4, 6, 8) | widths(8, 6, 4, 3, 2, 1)),
        # two_gpu's towers on the GPUs (refused without two), or both on the CPU
        "two_gpu_on_cpu": draw(st.booleans()),
    }


def expected_error(s: dict, widths: list[int]) -> str | None:
    """The switch an invalid combination must name, or None when it is valid (worked out apart from the model)."""
    if s["split"] == "two_gpu" and not s["two_gpu_on_cpu"] and torch.cuda.device_count() < 2:
        return "split=two_gpu"
    if s["split"] == "half" and min(widths[:4]) < 2:
        return "widths must be >= 1 .>= 2 in conv1..conv4 with split=half"
    if s["split"] in ("grouped", "two_gpu") and any(w % 2 for w in widths):
        return "split=.* widths must be even"
    kernel, stride, padding, _ = MODELS[s["model"]]
    padding = max(0, math.ceil((227 - s["input_size"]) / 2)) if padding is None else padding
    side = s["input_size"] + 2 * padding
    if side < kernel:
        return "input_size"
    side = (side - kernel) // stride + 1
    window, step = POOLING[s["pooling"]]
    for _ in range(3):  # after conv1, conv2 and conv5: the convolutions in between keep the size
        if side < window:
            return "input_size"
        side = (side - window) // step + 1
    return None


@pytest.fixture(scope="module")
def compose_switches():
    with initialize_config_module("alexlab.conf", version_base="1.3"):
        yield lambda overrides: compose("config", overrides=overrides)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(s=switches())
def test_each_combination_trains_or_fails_naming_the_switch(compose_switches, s):
    # quoted: a config group option is a string (depth='3'; unquoted, Hydra reads an int)
    overrides = [f"{group}='{s[group]}'" for group in ("model", "depth", "dropout", "lrn", "pooling", "activation")]
    overrides += [f"split={s['split']}", f"init={s['init']}", f"model.input_size={s['input_size']}"]
    overrides += ["model.fc_width=64"]  # the paper's 4096 only makes it slower
    if s["widths"] is not None:
        overrides.append(f"model.widths=[{','.join(map(str, s['widths']))}]")
    if s["split"] == "two_gpu" and s["two_gpu_on_cpu"]:
        overrides.append("model.devices=[cpu,cpu]")
    cfg = OmegaConf.to_container(compose_switches(overrides).model, resolve=True)
    assert cfg.pop("_target_") == "alexlab.model.alexnet.AlexNet"
    error = expected_error(s, cfg["widths"])
    event(f"refused: {error}" if error else "trains")
    if error is not None:
        with pytest.raises(ValueError, match=error):
            AlexNet(**cfg)
        return
    model = AlexNet(**cfg)
    x = torch.randn(2, cfg["in_channels"], s["input_size"], s["input_size"])
    logits = model(x)
    assert logits.shape == (2, cfg["num_classes"])
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
