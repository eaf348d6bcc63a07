"""decay_biases: weight decay on the weights only (the default, as cuda-convnet and Caffe's AlexNet train), or on
every parameter (decay_biases=true). The switch is AlexNetModule's argument, conf/config.yaml's `decay_biases`, and
these tests."""

import csv
import functools

import pytest
import torch
from helpers.commands import read_metrics, run_dirs
from hydra import compose, initialize_config_module

from alexlab.errors import BadValue
from alexlab.model.alexnet import AlexNet
from alexlab.module import AlexNetModule, parameter_groups

SMALL = dict(num_classes=10, in_channels=1, input_size=28, widths=(8, 16, 16, 16, 16), fc_width=32, stem_kernel=3,
             stem_stride=1)  # fmt: skip


def network() -> AlexNet:
    torch.manual_seed(0)
    return AlexNet(**SMALL)


def test_the_biases_form_their_own_group_without_weight_decay():
    net = network()
    weights, biases = parameter_groups(net, decay_biases=False)
    names = {id(p): name for name, p in net.named_parameters()}
    assert (weights["name"], biases["name"]) == ("weights", "biases")
    assert biases["weight_decay"] == 0.0 and "weight_decay" not in weights  # the optimiser's own for the weights
    assert sorted(names[id(p)] for p in biases["params"]) == sorted(n for n in names.values() if n.endswith(".bias"))
    assert all(names[id(p)].endswith(".weight") for p in weights["params"])
    assert len(weights["params"]) + len(biases["params"]) == len(names) == 16  # 5 conv + 3 fc layers, 2 each
    (every,) = parameter_groups(net, decay_biases=True)
    assert [id(p) for p in every["params"]] == [id(p) for p in net.parameters()] and "weight_decay" not in every


@pytest.mark.parametrize("decay_biases", [False, True])
def test_an_sgd_step_decays_the_biases_only_when_asked(decay_biases):
    net = network()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    optimizer = torch.optim.SGD(parameter_groups(net, decay_biases), lr=1.0, weight_decay=0.25)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)  # no loss gradient: what moves is the decay alone, w <- w - lr * wd * w
    optimizer.step()
    for name, p in net.named_parameters():
        decayed = decay_biases or name.endswith(".weight")
        assert torch.all(p == (0.75 if decayed else 1.0)), name


def test_the_module_hands_its_optimizer_the_groups_and_refuses_a_non_boolean():
    def module(**kwargs) -> AlexNetModule:
        optimizer = functools.partial(torch.optim.SGD, lr=0.1, weight_decay=5e-4)
        return AlexNetModule(network(), 10, optimizer, {"name": "constant"}, **kwargs)

    trainer = type("Trainer", (), {"max_epochs": 1, "estimated_stepping_batches": 1})()
    groups = {}
    for decay in (False, True):
        lit = module(decay_biases=decay)
        lit._trainer = trainer  # configure_optimizers reads nothing of it for a constant schedule
        groups[decay] = [
            (g.get("name"), g["weight_decay"]) for g in lit.configure_optimizers()["optimizer"].param_groups
        ]
    assert groups == {False: [("weights", 5e-4), ("biases", 0.0)], True: [(None, 5e-4)]}
    with pytest.raises(BadValue, match="decay_biases must be true or false"):
        module(decay_biases="no")


def test_the_default_config_leaves_the_biases_undecayed():
    with initialize_config_module("alexlab.conf", version_base="1.3"):
        assert compose("config").decay_biases is False
        assert compose("config", overrides=["experiment=paper"]).decay_biases is False
        assert compose("config", overrides=["decay_biases=true"]).decay_biases is True


@pytest.mark.parametrize("decay_biases", ["false", "true"])
def test_a_run_logs_one_lr_whatever_its_groups_and_checkpoints_their_decay(alexlab, tmp_path, decay_biases):
    limits = ("trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1")
    alexlab("experiment=smoke", "logger=csv", f"decay_biases={decay_biases}", "schedule=step", "schedule.step_size=1",
            *limits)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path / "outputs")
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [key for key in rows[0] if key.startswith(("lr/", "lr-")) or key == "lr"] == ["lr"]  # not lr/pg1, lr/pg2
    history = read_metrics(run_dir)["history"]  # the same name and values as metrics.json: the lr each epoch began at
    assert [float(row["lr"]) for row in rows] == pytest.approx([row["lr"] for row in history])
    assert [row["lr"] for row in history] == pytest.approx([0.01, 0.001])  # schedule=step: / 10 after an epoch
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    decays = [group["weight_decay"] for group in checkpoint["optimizer_states"][0]["param_groups"]]
    assert decays == ([0.0005] if decay_biases == "true" else [0.0005, 0.0])
