"""The files alexlab writes into a run directory and a sweep directory, named here once (alexlab.record owns what
they hold; alexlab.masking masks the secrets in the configs Hydra saves), and where a run's checkpoints are."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

log = logging.getLogger("alexlab")

RECORD = "metrics.json"  # the run record (alexlab.record)
LOCK = ".alexlab.lock"  # held (flock) by the process running the job; the kernel drops it when that process dies
HYDRA_DIR = ".hydra"  # the configs Hydra saved as the job started: config.yaml, hydra.yaml, overrides.yaml
MULTIRUN = "multirun.yaml"  # a sweep directory's composed config, as Hydra saved it
SWEEP_SUMMARY = "sweep.json"  # a sweep directory's runs by status (alexlab.sweep.SweepSummary)
CHECKPOINTS = "checkpoints"  # a run's checkpoints (conf/callbacks/default.yaml: ${paths.run_dir}/checkpoints)


def last_checkpoint(run_dir: Path) -> Path:
    """Where a run's latest checkpoint goes: every epoch's end (conf/callbacks/default.yaml: last_checkpoint), and
    the step a signal stopped the run at (CheckpointOnInterrupt)."""
    return Path(run_dir) / CHECKPOINTS / "last.ckpt"


def readable_checkpoint(path: Path) -> bool:
    """Whether `path` is a whole checkpoint file: torch.save writes a zip archive whose directory is at its end, so a
    file cut short (a full disk, a killed copy) is not one. Cheap: reads the end of the file only."""
    try:
        return path.is_file() and zipfile.is_zipfile(path)
    except OSError:
        return False


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint an unfinished run goes on from: the newest whole one among the hpc_ckpt_<n>.ckpt that
    Lightning's SLURM requeue saves, checkpoints/last.ckpt and the epoch checkpoints; None without one."""
    run_dir = Path(run_dir)
    saved = [*run_dir.glob("hpc_ckpt_*.ckpt"), *(run_dir / CHECKPOINTS).glob("*.ckpt")]
    whole = [path for path in saved if readable_checkpoint(path)]
    for path in sorted(set(saved) - set(whole)):
        log.warning("%s is not a whole checkpoint (cut short?): not resumed from", path)
    return max(whole, key=lambda path: path.stat().st_mtime, default=None)


def file_away_hpc_checkpoints(run_dir: Path) -> None:
    """Move the hpc_ckpt_<n>.ckpt of `run_dir` into its checkpoints/. Under SLURM, Lightning restores the newest hpc
    checkpoint of the run directory whenever it is not told a checkpoint, and so also in trainer.test(): the test
    would then see the requeue's mid-epoch weights instead of the best checkpoint's, and the run would lose the
    epochs it trained after the requeue from its history. Called before fit chooses where it starts
    (resume_checkpoint finds them in checkpoints/ as well); a new pre-emption writes a new one."""
    run_dir = Path(run_dir)
    for path in sorted(run_dir.glob("hpc_ckpt_*.ckpt")):
        target = run_dir / CHECKPOINTS / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
