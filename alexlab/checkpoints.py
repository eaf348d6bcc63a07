"""A run's checkpoints and weights: where fit starts, the best checkpoint to test, and loading weights without
unpickling arbitrary objects (a file a user was sent cannot run code), refused in one line where they do not fit."""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from alexlab import files
from alexlab.errors import BadFile, NotFound
from alexlab.model.alexnet import from_torchvision_state_dict

log = logging.getLogger("alexlab")


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best epoch's checkpoint: of the checkpoint callback that monitors a metric (conf/callbacks/default.yaml:
    `checkpoint`; `last_checkpoint` monitors none), None before it saved one or without it."""
    monitoring = [callback for callback in trainer.checkpoint_callbacks if callback.monitor]
    return (monitoring[0].best_model_path or None) if monitoring else None


def fit_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """Where fit starts. A run dir only holds checkpoints of an unfinished run with these same overrides
    (record.claim refuses any other), so it goes on from the newest whole one: the hpc_ckpt_<n>.ckpt that
    Lightning's SLURM auto-requeue saved before this job was requeued (launcher=slurm), checkpoints/last.ckpt (saved
    at every epoch's end and by CheckpointOnInterrupt), or an epoch checkpoint when a full disk cut last.ckpt short;
    else cfg.ckpt_path (`ckpt_path=last`: see cli's resume)."""
    newest = files.resume_checkpoint(run_dir)
    if newest is not None:
        log.info("resuming from %s", newest)
        return str(newest)
    if cfg.ckpt_path == "last":
        log.warning("ckpt_path=last: no checkpoint in %s, starting from scratch", run_dir)
        return None
    return cfg.ckpt_path


def load_checkpoint_state(path: str) -> dict[str, torch.Tensor]:
    """The model weights of a Lightning checkpoint, loaded without unpickling arbitrary objects."""
    checkpoint = load_tensors(path, "checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise BadFile(f"checkpoint {path} has no state_dict: not a Lightning checkpoint")
    return tensors_only(checkpoint["state_dict"], f"checkpoint {path}")


def tensors_only(state, what: str) -> dict[str, torch.Tensor]:
    """`state` when it maps names to tensors, as a network's state_dict does; BadFile otherwise."""
    if not isinstance(state, dict) or not state:
        raise BadFile(f"{what} holds no network weights (its state_dict is an empty or no dict)")
    wrong = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if wrong:
        raise BadFile(f"{what}: its state_dict holds values that are not tensors ({', '.join(wrong[:4])})")
    return state


def load_tensors(path: str, what: str):
    """torch.load(weights_only=True): tensors and plain data only, so a file a user was sent cannot run code. A
    missing, truncated or foreign file, or one that holds other objects, is refused in one line."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise NotFound(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's words: "Unsupported global: GLOBAL argparse.Namespace was not an allowed global" (a class), or
        # "Trying to load unsupported GLOBAL posix.system" (a function, from an object's __reduce__)
        unsafe = re.search(r"(?i)unsupported global:? (?:GLOBAL )?([\w.]+)", str(exc))
        if unsafe:
            raise BadFile(
                f"{what} {path} holds a Python object ({unsafe.group(1)}), not only weights: refused, as unpickling "
                "it could run code; alexlab loads tensors only (weights_only=True)"
            ) from exc
        raise BadFile(f"{what} {path} cannot be read ({type(exc).__name__}): truncated or not a {what}") from exc


def check_fits(target: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Fail in one line naming the layers of `state` that do not fit `target` (another architecture)."""
    expected = target.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(
                "shape differs in "
                + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in mismatched[:4])
            )
        if missing:
            parts.append("missing " + ", ".join(missing[:4]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:4]))
        raise BadFile(f"{source} does not fit this network (another architecture?): {'; '.join(parts)}")


def load_state(target: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `target`, or fail in one line naming the layers that do not fit."""
    check_fits(target, state, source)
    target.load_state_dict(state)


def load_weights(path: str) -> dict[str, torch.Tensor]:
    """A network state_dict from `path`: alexlab's own, a Lightning checkpoint's, or torchvision alexnet's."""
    state = load_tensors(path, "weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = {k.removeprefix("model.") if isinstance(k, str) else k: v for k, v in state["state_dict"].items()}
    state = tensors_only(state, f"weights file {path}")
    if "features.0.weight" in state:
        state = from_torchvision_state_dict(state)
    return state
