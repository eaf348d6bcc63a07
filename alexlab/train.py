"""The tasks: a composed config in, a trained (or tested) network and its metrics out. No argv, no globals. A task
claims its run directory, runs one Job (alexlab.job) and records how it ended."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from alexlab import metrics, record
from alexlab.distributed import is_rank_zero
from alexlab.errors import BadValue, DirectoryBusy
from alexlab.job import Job
from alexlab.signals import Signals, job_signals
from alexlab.terminal import quiet_lightning

log = logging.getLogger("alexlab")
quiet_lightning()


def train(cfg: DictConfig, signals: Signals | None = None) -> float:
    """Fit, then test the best checkpoint; write the run record. Returns the objective (e.g. best val top-1 error).
    `signals`: the job's SIGTERM handler when the caller installed it already (cli: before this module's imports)."""
    return _run(cfg, fit=True, signals=signals)


def test(cfg: DictConfig, signals: Signals | None = None) -> float:
    """Evaluate `cfg.ckpt_path` on the test split; write the run record. Returns the test top-1 error."""
    if not cfg.ckpt_path:
        raise BadValue("alexlab test needs a checkpoint: alexlab test ckpt_path=PATH/TO/last.ckpt")
    return _run(cfg, fit=False, signals=signals)


def _run(cfg: DictConfig, fit: bool, signals: Signals | None = None) -> float:
    """One job: claim its directory, run it, record how it ended. In a multirun, a job that fails (crash,
    divergence, pruning) is recorded and returns NaN so that the sweep goes on; a job that already finished in this
    directory (a re-run of an interrupted sweep) is not run again, nor one that another process is running."""
    started = time.time()
    objective = cfg.objective if fit else metrics.TEST_TOP1
    if not is_rank_zero():  # a DDP process other than rank zero: trains its shard, writes nothing of the run's
        return Job(cfg, fit, started).run().value(objective)
    run_dir = Path(cfg.paths.run_dir)
    overrides = record.as_typed(HydraConfig.get().overrides.task)
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    try:
        handler = contextlib.nullcontext(signals) if signals is not None else job_signals()
        with record.claim(run_dir, overrides, "train" if fit else "test") as previous, handler as signals:
            if previous is not None and previous.finished and fit:
                value = previous.value(objective)
                log.info("already finished in %s (%s = %.4f): not run again", run_dir, objective, value)
                return value
            return Job(cfg, fit, started, signals, previous).record_run(multirun).value(objective)
    except DirectoryBusy as exc:
        if not multirun:
            raise
        log.warning("%s: not run again here", exc)  # a second worker of the same sweep directory
        return math.nan
