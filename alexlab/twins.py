"""A sweep never trains the same network twice: a job whose training equals a finished job's tests that job's weights.

Two jobs of one sweep directory can differ only in how the network is tested: `paper_ablations`' centre_test is
the baseline with `test_views=centre` instead of ten_crop, and `alexlab -m test_views=centre,ten_crop` is the same.
Training is deterministic for a given config and seed on a given machine (the study's centre_test runs retrained
the baseline to the same validation error at every epoch, a tenth of the study's time), so the second job loads the
first one's best checkpoint and only tests it: its run record copies the first job's epochs and training
curve, adds its own test, names the job it was trained in (`trained_in`), and its wall time is its own test's.

What "the same training" means is owned here: the composed config, interpolations as written, equal in every key
but NOT_TRAINING, compared with the finished job's saved `.hydra/config.yaml`. Anything else that differs, or a
job that did not finish, or a best checkpoint that is gone (checkpoints are not kept across machines), and the job
trains. Only jobs of a multirun look (a single run was asked to train); `reuse_training=false` turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from alexlab import files, record
from alexlab.errors import BadFile
from alexlab.record import SWEEP_CONTROLS

# Config keys that never change the weights a run trains: how it is tested, where it writes and what it reports,
# how it was started, and how long its sweep goes on.
NOT_TRAINING = (
    "data.test_views",
    "test_after_fit",
    "paths",
    "logger",
    "progress_every_s",
    "resume",
    "reuse_training",
    *SWEEP_CONTROLS,
)


@dataclass(frozen=True)
class Twin:
    """A finished job of the same sweep directory that trained what this job would train."""

    run_dir: Path
    record: record.Record
    checkpoint: Path  # its best checkpoint: what it tested after training, and what this job tests

    def epochs(self) -> dict:
        """Its training, as this job's record keeps it: every metric of the last epoch but its test's."""
        return {k: v for k, v in self.record.final.items() if not k.startswith("test/")}


def training_config(config: DictConfig) -> dict:
    """The composed config as written (interpolations unresolved) without the keys that do not change training."""
    tree = OmegaConf.create(OmegaConf.to_container(config, resolve=False))  # a copy, open to deleting keys
    for key in NOT_TRAINING:
        parent, _, name = key.rpartition(".")
        node = OmegaConf.select(tree, parent) if parent else tree
        if isinstance(node, DictConfig):
            node.pop(name, None)
    return OmegaConf.to_container(tree, resolve=False)


def find_twin(cfg: DictConfig, run_dir: Path) -> Twin | None:
    """The lowest-numbered finished job of `run_dir`'s sweep directory (its numbered job directories) that trained
    what `cfg` trains and whose best checkpoint is still there; None in a single run, with reuse_training=false, or
    when there is none."""
    if not cfg.get("reuse_training", True) or HydraConfig.get().mode.name != "MULTIRUN":
        return None
    mine = training_config(cfg)
    numbered = [path for path in run_dir.parent.iterdir() if path.name.isdigit() and path.name != run_dir.name]
    for job_dir in sorted(numbered, key=lambda path: int(path.name)):
        twin = _twin(job_dir, mine)
        if twin is not None:
            return twin
    return None


def _twin(job_dir: Path, mine: dict) -> Twin | None:
    try:
        done = record.read(job_dir)
    except BadFile:  # a sibling whose record is not one is not one to copy from
        return None
    if done is None or not done.finished or done.task != "train" or done.trained_in:
        return None
    best = done.checkpoints.get("best")
    checkpoint = job_dir / files.CHECKPOINTS / Path(best).name if best else None
    if checkpoint is None or not files.readable_checkpoint(checkpoint):
        return None
    saved = job_dir / files.HYDRA_DIR / "config.yaml"
    try:  # read as Hydra wrote it, by OmegaConf's own loader (its reading of numbers, as the live config's)
        theirs = training_config(OmegaConf.load(saved))
    except (OSError, yaml.YAMLError):  # no saved config (another launcher's layout), or not one that parses: train
        return None
    return Twin(job_dir, done, checkpoint) if theirs == mine else None
