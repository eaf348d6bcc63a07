"""One run of a task: the data, network, loggers and Trainer built from the config, fit and tested (or only tested),
and the run record of it as far as it went (alexlab.record)."""

from __future__ import annotations

import functools
import logging
import sys
import time
import traceback
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LambdaCallback
from omegaconf import DictConfig, OmegaConf

from alexlab import config_groups, files, metrics, record
from alexlab.callbacks import (
    AtomicCheckpointIO,
    CheckpointOnInterrupt,
    CleanTrainingError,
    EpochHistory,
    LRNStrength,
    OptunaPruning,
    PhaseTimes,
    PlateauStep,
    StopOnDivergence,
    TrainingCurve,
    log_curve,
)
from alexlab.checkpoints import (
    best_checkpoint,
    check_fits,
    fit_checkpoint,
    load_checkpoint_state,
    load_state,
    load_weights,
)
from alexlab.distributed import ddp_processes_run_this_job
from alexlab.errors import (
    EXIT_INTERRUPTED,
    CannotWrite,
    OutOfMemory,
    out_of_memory_line,
)
from alexlab.loggers import build_loggers, choices_of, finish_wandb
from alexlab.module import AlexNetModule, build_module
from alexlab.optuna_storage import current_trial
from alexlab.record import Record, Status
from alexlab.signals import Signals
from alexlab.terminal import PercentProgressBar, ProgressLines, headline
from alexlab.twins import Twin, find_twin

log = logging.getLogger("alexlab")


class Job:
    """One run: build the data, network and Trainer from the config, fit and test, and the record of it."""

    def __init__(
        self,
        cfg: DictConfig,
        fit: bool,
        started: float,
        signals: Signals | None = None,
        previous: Record | None = None,
    ) -> None:
        self.cfg, self.fit, self.started = cfg, fit, started
        # the record of this run's earlier stints (interrupted, killed, failed) that this one goes on from: the run
        # started when they did, its wall time adds theirs (seeds=auto's time_budget_h sums it), and until this
        # stint restores its checkpoint its record keeps their epochs
        self.before = previous if fit and previous is not None and not previous.finished else None
        self.signals = signals or Signals()
        self.run_dir = Path(cfg.paths.run_dir)
        self.task = "train" if fit else "test"
        self.trainer: L.Trainer | None = None
        self.loggers: list = []
        self.history, self.curve = EpochHistory(), TrainingCurve(cfg.train_curve_every)
        self.clean = (CleanTrainingError(cfg.train_clean_every, cfg.train_clean_size, cfg.train_clean_stop)
                      if cfg.train_clean_every else None)  # fmt: skip
        self.phases = PhaseTimes(time.perf_counter(), self.clean)
        self.results: dict[str, float] = {}
        self.twin: Twin | None = None  # a finished job of the sweep that trained this network already

    @functools.cached_property
    def git(self) -> dict:  # asked once a run: its record is written after every epoch
        return record.git_state()

    @functools.cached_property
    def macs(self) -> int | None:
        """Multiply-accumulates per image of this run's network, for the report's check that two arms differ in
        their switch alone (None for a network alexlab.info cannot size)."""
        from alexlab.info import network_size

        try:
            return network_size(OmegaConf.to_container(self.cfg.model, resolve=True))[1]
        except Exception:  # noqa: BLE001 -- a user's own network: the report then compares parameters only
            return None

    def record_run(self, multirun: bool) -> Record:
        """Run it between two records: `running` first, then how it ended. A failure is raised again unless the
        job is one of a multirun (the sweep goes on); an interrupted run exits with EXIT_INTERRUPTED."""
        record.write(self.run_dir, self.record(Status.RUNNING))
        try:
            self.run()
        except BaseException as exc:
            status, error = record.ending(exc)
            oom = out_of_memory_line(exc, self.cfg.data.batch_size)
            error = oom or error
            if status == Status.INTERRUPTED and self.signals.preempted:
                error = "pre-empted by SLURM (SIGUSR1): requeued"
            ended = self.record(status, error)
            if status in (Status.FAILED, Status.DIVERGED):
                ended.traceback = traceback.format_exc()
            self.end(ended)
            if status == Status.INTERRUPTED:
                if self.fit and ended.resume_from:
                    log.warning("interrupted; to go on from %s run the same command with resume=true",
                                ended.resume_from)  # fmt: skip
                raise SystemExit(EXIT_INTERRUPTED) from exc
            if not multirun and oom:
                raise OutOfMemory(oom) from exc
            if not multirun:
                raise
            if status == Status.PRUNED:
                log.info("pruned: %s (run dir: %s)", error, self.run_dir)
            else:
                log.error("run %s: %s (run dir: %s; the sweep goes on)", status.value, error, self.run_dir)
            return ended
        ended = self.record(Status.FINISHED)
        self.end(ended)
        for line in headline(ended, self.run_dir):
            log.info("%s", line)
        return ended

    def end(self, ended: Record) -> None:
        """Write the last record and close W&B; a record that cannot be written (a full disk) is said, not raised
        over the run's own error."""
        try:
            record.write(self.run_dir, ended)
        except CannotWrite as exc:
            log.error("the run ended %s but its record could not be written: %s", ended.status.value, exc)
        finish_wandb(self.loggers, ended.status.value, ended.error)

    def run(self) -> Record:
        """Build, fit, test: the finished run's record (not written: rank zero's _run writes it)."""
        cfg, run_dir = self.cfg, self.run_dir
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        module = self.build_module()
        if self.fit and (twin := find_twin(cfg, run_dir)) is not None:
            return self.test_twin(twin, module, datamodule)
        if self.fit:  # out of the way of Lightning's own SLURM resume, which would also restore them in the test
            files.file_away_hpc_checkpoints(run_dir)
        ckpt_path = fit_checkpoint(cfg, run_dir) if self.fit else None
        if ckpt_path is not None:  # a missing, corrupt or unsafe checkpoint, or another network's: one line
            check_fits(module, load_checkpoint_state(ckpt_path), ckpt_path)
        self.loggers = build_loggers(cfg, job_type=self.task)
        self.trainer = trainer = self.build_trainer()
        with ddp_processes_run_this_job(self.task):
            if self.fit:
                with self.signals.defer():
                    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
                if cfg.test_after_fit:
                    self.results.update(_test(trainer, module, datamodule, best_checkpoint(trainer)))
            else:
                self.results.update(_test(trainer, module, datamodule, None))
        return self.record(Status.FINISHED)

    def test_twin(self, twin: Twin, module: AlexNetModule, datamodule) -> Record:
        """This job's training is `twin`'s (alexlab.twins): its epochs go to this job's loggers as they went to its
        own, then its best checkpoint is tested here."""
        log.info("trained in %s already (only the test differs): testing its checkpoint %s", twin.run_dir,
                 twin.checkpoint)  # fmt: skip
        self.twin = twin
        self.loggers = build_loggers(self.cfg, job_type=self.task)
        self.trainer = trainer = self.build_trainer()
        for row in twin.record.history:  # W&B and TensorBoard plot them by step; the CSV log keeps a row per epoch
            for logger in self.loggers:
                logger.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])
        log_curve(self.loggers, twin.record.curve)  # as TrainingCurve logs them
        log_curve(self.loggers, twin.record.clean_curve, (metrics.CLEAN_TOP1, metrics.CLEAN_LOSS))
        if self.cfg.test_after_fit:  # DDP's other processes test the same checkpoint (`alexlab test`), not train
            with ddp_processes_run_this_job("test", (f"ckpt_path={twin.checkpoint}",)):
                self.results.update(_test(trainer, module, datamodule, str(twin.checkpoint)))
        return self.record(Status.FINISHED)

    def build_module(self) -> AlexNetModule:
        cfg = self.cfg
        network = instantiate(cfg.model)
        if cfg.weights:
            load_state(network, load_weights(cfg.weights), cfg.weights)
        module = build_module(cfg, network)
        if not self.fit:
            load_state(module, load_checkpoint_state(cfg.ckpt_path), cfg.ckpt_path)
        return module

    def build_trainer(self) -> L.Trainer:
        cfg = self.cfg
        callbacks = [self.history, self.curve, StopOnDivergence(), PlateauStep(), LRNStrength(), self.phases]
        if self.clean is not None and self.fit:
            callbacks.append(self.clean)
        if self.fit:
            # the record after every epoch (after EpochHistory's row): a kill -9 leaves it at most an epoch old
            callbacks.append(LambdaCallback(on_train_epoch_end=self.record_epoch))
            callbacks.append(CheckpointOnInterrupt(str(files.last_checkpoint(self.run_dir))))
        if (trial := current_trial()) is not None:  # a trial of the Optuna sweeper: its pruner may stop this run
            callbacks.append(OptunaPruning(trial, cfg.objective))
        for callback_cfg in (cfg.callbacks or {}).values():
            callbacks.append(instantiate(callback_cfg))
        show_bar = sys.stderr.isatty()  # a live bar on a terminal; lines every progress_every_s seconds elsewhere
        callbacks.append(PercentProgressBar() if show_bar else ProgressLines(cfg.progress_every_s))
        return instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=self.loggers or False,
            default_root_dir=str(self.run_dir),
            enable_progress_bar=show_bar,
            enable_model_summary=False,
            plugins=[AtomicCheckpointIO()],  # checkpoints are whole or absent, never cut short
        )

    def record_epoch(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            record.write(self.run_dir, self.record(Status.RUNNING))

    def record(self, status: Status, error: str | None = None) -> Record:
        """The record of this run as far as it went."""
        cfg, before, twin = self.cfg, self.before, self.twin
        history, trainer = self.history.history or (before.history if before else []), self.trainer
        curve = self.curve.curve or (before.curve if before else [])
        clean = (self.clean.curve if self.clean else []) or (before.clean_curve if before else [])
        final = {k: v for k, v in history[-1].items() if "/" in k} if history else {}
        if twin is not None:  # trained in another job of the sweep: its epochs, this job's test
            history, curve, final = twin.record.history, twin.record.curve, twin.epochs()
            clean = twin.record.clean_curve
        final.update(self.results)
        best: dict[str, float] = {}
        if history:
            best_row = min(history, key=lambda row: row.get(cfg.objective, float("inf")))
            best = {k: v for k, v in best_row.items() if k.startswith(("val/", "train_eval/"))}
            best["epoch"] = best_row["epoch"]
        last = files.last_checkpoint(self.run_dir)
        resume = files.resume_checkpoint(self.run_dir) if self.fit and status != Status.FINISHED else None
        module = trainer.lightning_module if trainer is not None else None
        return Record(
            status=status,
            task=self.task,
            overrides=record.identity(HydraConfig.get().overrides.task),
            seed=cfg.seed,
            switches=choices_of(config_groups.identity()),
            started=before.started if before and before.started else self.started,
            objective=cfg.objective if self.fit else metrics.TEST_TOP1,
            error=error,
            final=final,
            best=best,
            history=history,
            curve=curve,
            clean_curve=clean,
            checkpoints={
                "best": str(twin.checkpoint) if twin else best_checkpoint(trainer) if trainer is not None else None,
                "last": str(last) if self.fit and not twin and last.is_file() else None,
            },
            resume_from=str(resume) if resume else None,
            parameters=sum(p.numel() for p in module.parameters()) if module is not None else None,
            macs=self.macs,
            git=self.git,
            versions={"torch": torch.__version__, "lightning": L.__version__},
            wall_time_s=round(((before.wall_time_s or 0.0) if before else 0.0) + time.time() - self.started, 2),
            phases=self.phases.phases(),
            trained_in=str(twin.run_dir) if twin else None,
        )


def _test(trainer: L.Trainer, module, datamodule, ckpt_path: str | None) -> dict[str, float]:
    if ckpt_path:
        # weights only, through the same safe loader as `alexlab test`
        load_state(module, load_checkpoint_state(ckpt_path), ckpt_path)
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in metrics.items()}
