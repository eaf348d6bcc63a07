"""conf/optimizer: each optimiser runs fused (one multi-tensor kernel a step), and a fused step is the update the
plain loop over parameters makes, with the config's own hyperparameters and alexlab's parameter groups."""

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from alexlab.config_groups import CONFIG_PACKAGE
from alexlab.model.alexnet import AlexNet
from alexlab.module import parameter_groups

SMALL = dict(num_classes=10, in_channels=1, input_size=28, widths=(8, 16, 16, 16, 16), fc_width=32, stem_kernel=3,
             stem_stride=1)  # fmt: skip


def optimizer_config(name: str):
    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        return compose("config", overrides=[f"optimizer={name}"]).optimizer


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_each_optimizer_is_fused_and_steps_as_the_plain_loop_does(name):
    config = optimizer_config(name)
    assert config.fused is True
    torch.manual_seed(0)
    networks = [AlexNet(**SMALL), AlexNet(**SMALL)]
    networks[1].load_state_dict(networks[0].state_dict())
    fused = instantiate(config)(parameter_groups(networks[0], False))
    plain = instantiate(config, fused=None, foreach=False)(parameter_groups(networks[1], False))
    assert fused.defaults["fused"] is True and not plain.defaults["foreach"]
    initial = {label: p.detach().clone() for label, p in networks[0].named_parameters()}
    for step in range(3):
        for net in networks:
            torch.manual_seed(step)
            for p in net.parameters():
                p.grad = torch.randn_like(p)
        fused.step()
        plain.step()
    for (label, a), b in zip(networks[0].named_parameters(), networks[1].parameters(), strict=True):
        assert not torch.equal(a, initial[label]), label  # the steps moved it
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=label)
