"""The tasks: a composed config in, a trained (or tested) network and its metrics out. No argv, no globals."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LambdaCallback
from omegaconf import DictConfig, OmegaConf

from alexlab import cli, config_groups, record
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
from alexlab.csv_log import CSVLogger
from alexlab.distributed import ddp_processes_run_this_job, is_rank_zero
from alexlab.errors import BadFile, BadValue, CannotWrite, DirectoryBusy, NotFound, OutOfMemory
from alexlab.masking import mask, mask_text, masked_argv
from alexlab.model.alexnet import from_torchvision_state_dict
from alexlab.module import AlexNetModule
from alexlab.optuna_storage import current_trial
from alexlab.record import Record, Status
from alexlab.terminal import PercentProgressBar, ProgressLines, headline
from alexlab.twins import Twin, find_twin
from alexlab.wandb_runs import wandb_logged_in

log = logging.getLogger("alexlab")
# `import lightning` gives its logger a stderr handler of its own; Hydra's root handlers already print these lines
# (and write them to the run's alexlab.log), so without this every Lightning message shows twice.
logging.getLogger("lightning").handlers.clear()
# Lightning's lines that tell an alexlab user nothing, left out of the terminal and alexlab.log: its cloud logger's
# advert, accelerators this machine does not have, the count of batches it loads to size a per-step schedule, a
# limit the user set (`Trainer(limit_val_batches=4)` was configured...), and why fit stopped (alexlab's headline
# says how the run ended). What helps stays: a GPU that is there, used or not, restoring from a checkpoint, DDP.
LIGHTNING_CHATTER = re.compile(
    r"💡 Tip|GPU available: False, used: False|TPU available: False|HPU available: False"
    r"|Loading `train_dataloader` to estimate number of stepping batches"
    r"|`Trainer\(limit_\w+_batches=[^)]*\)` was configured|`Trainer.fit` stopped: "
)
for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(name).addFilter(lambda record: not LIGHTNING_CHATTER.match(record.getMessage()))

# Exit status of a run stopped by SIGTERM or Ctrl-C after saving its checkpoint (sysexits' EX_TEMPFAIL: "try again"):
# the same command with resume=true goes on from it.
EXIT_INTERRUPTED = cli.EXIT_INTERRUPTED


def train(cfg: DictConfig, signals: record.Signals | None = None) -> float:
    """Fit, then test the best checkpoint; write metrics.json. Returns the objective (e.g. best val top-1 error).
    `signals`: the job's SIGTERM handler when the caller installed it already (cli: before this module's imports)."""
    return _run(cfg, fit=True, signals=signals)


def test(cfg: DictConfig, signals: record.Signals | None = None) -> float:
    """Evaluate `cfg.ckpt_path` on the test split; write metrics.json. Returns the test top-1 error."""
    if not cfg.ckpt_path:
        raise BadValue("alexlab test needs a checkpoint: alexlab test ckpt_path=PATH/TO/last.ckpt")
    return _run(cfg, fit=False, signals=signals)


def _run(cfg: DictConfig, fit: bool, signals: record.Signals | None = None) -> float:
    """One job: claim its directory, run it, record how it ended. In a multirun, a job that fails (crash,
    divergence, pruning) is recorded and returns NaN so that the sweep goes on; a job that already finished in this
    directory (a re-run of an interrupted sweep) is not run again, nor one that another process is running."""
    started = time.time()
    objective = cfg.objective if fit else "test/top1_err"
    if not is_rank_zero():  # a DDP process other than rank zero: trains its shard, writes nothing of the run's
        return Job(cfg, fit, started).run().value(objective)
    run_dir = Path(cfg.paths.run_dir)
    overrides = list(HydraConfig.get().overrides.task)
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    try:
        handler = contextlib.nullcontext(signals) if signals is not None else record.job_signals()
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


class Job:
    """One run: build the data, network and Trainer from the config, fit and test, and the record of it."""

    def __init__(
        self,
        cfg: DictConfig,
        fit: bool,
        started: float,
        signals: record.Signals | None = None,
        previous: Record | None = None,
    ) -> None:
        self.cfg, self.fit, self.started = cfg, fit, started
        # the record of this run's earlier stints (interrupted, killed, failed) that this one goes on from: the run
        # started when they did, its wall time adds theirs (seeds=auto's time_budget_h sums it), and until this
        # stint restores its checkpoint its record keeps their epochs
        self.before = previous if fit and previous is not None and not previous.finished else None
        self.signals = signals or record.Signals()
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
        return git_state()

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
            oom = oom_message(exc, self.cfg.data.batch_size)
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
            record.file_away_hpc_checkpoints(run_dir)
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
        log_curve(self.loggers, twin.record.clean_curve, ("train_clean/top1_err", "train_clean/loss"))
        if self.cfg.test_after_fit:  # DDP's other processes test the same checkpoint (`alexlab test`), not train
            with ddp_processes_run_this_job("test", (f"ckpt_path={twin.checkpoint}",)):
                self.results.update(_test(trainer, module, datamodule, str(twin.checkpoint)))
        return self.record(Status.FINISHED)

    def build_module(self) -> AlexNetModule:
        cfg = self.cfg
        network = instantiate(cfg.model)
        if cfg.weights:
            load_state(network, load_weights(cfg.weights), cfg.weights)
        module = AlexNetModule(
            network,
            num_classes=cfg.data.num_classes,
            optimizer=instantiate(cfg.optimizer),
            schedule=cfg.schedule,
            channels_last=cfg.channels_last,
            compile=cfg.compile,
            decay_biases=cfg.decay_biases,
        )
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
            callbacks.append(CheckpointOnInterrupt(str(record.last_checkpoint(self.run_dir))))
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
        last = record.last_checkpoint(self.run_dir)
        resume = record.resume_checkpoint(self.run_dir) if self.fit and status != Status.FINISHED else None
        module = trainer.lightning_module if trainer is not None else None
        return Record(
            status=status,
            task=self.task,
            overrides=record.identity(HydraConfig.get().overrides.task),
            seed=cfg.seed,
            switches=choices_of(config_groups.identity()),
            started=before.started if before and before.started else self.started,
            objective=cfg.objective if self.fit else "test/top1_err",
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
    newest = record.resume_checkpoint(run_dir)
    if newest is not None:
        log.info("resuming from %s", newest)
        return str(newest)
    if cfg.ckpt_path == "last":
        log.warning("ckpt_path=last: no checkpoint in %s, starting from scratch", run_dir)
        return None
    return cfg.ckpt_path


def choices_of(groups: tuple[str, ...]) -> dict[str, str | None]:
    choices = HydraConfig.get().runtime.choices
    return {name: choices.get(name) for name in groups}


def _test(trainer: L.Trainer, module, datamodule, ckpt_path: str | None) -> dict[str, float]:
    if ckpt_path:
        # weights only, through the same safe loader as `alexlab test`
        load_state(module, load_checkpoint_state(ckpt_path), ckpt_path)
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def git_state() -> dict:
    """The commit of the alexlab source tree and whether it had uncommitted changes (None outside a checkout)."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


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


def oom_message(exc: BaseException, batch_size: int) -> str | None:
    """One line for an out-of-memory error (CUDA's torch.OutOfMemoryError or the CPU allocator's), else None."""
    text = str(exc).strip()
    if isinstance(exc, torch.OutOfMemoryError):
        what = text.splitlines()[0] if text else "CUDA out of memory"
    elif isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in text:
        what = "CPU: " + text[text.index("DefaultCPUAllocator") :].splitlines()[0]
    else:
        return None
    return (
        f"out of memory at data.batch_size={batch_size} ({what}): try data.batch_size={max(1, batch_size // 2)} "
        "or trainer.precision=bf16-mixed"
    )


def build_loggers(cfg: DictConfig, job_type: str) -> list:
    loggers = []
    for name, logger_cfg in (cfg.logger or {}).items():
        if name == "wandb":
            wandb_logger = start_wandb(cfg, logger_cfg, job_type)
            if wandb_logger is not None:
                loggers.append(wandb_logger)
            elif "csv" not in cfg.logger:  # W&B could not start: keep the epoch metrics in a CSV all the same
                loggers.append(CSVLogger(cfg.paths.run_dir, name="csv", version=""))
        else:
            loggers.append(instantiate(logger_cfg))
    return loggers


def start_wandb(cfg: DictConfig, logger_cfg: DictConfig, job_type: str):
    """A WandbLogger for this job, or None (with one warning) when W&B cannot start: training goes on without it.

    The run is self-describing: the switches (and every other group choice), seed, overrides and git state are
    top-level config keys (for W&B's group-by, filters and parallel coordinates), the whole composed config is
    under "config"; the name and tags are the switch values; the group is the sweep directory's name."""
    # ablation: the option of a paper_ablations sweep, if any
    switches = choices_of((*config_groups.switches(), config_groups.ABLATION))
    group = None
    if HydraConfig.get().mode.name == "MULTIRUN":
        group = Path(HydraConfig.get().sweep.dir).name
    name = "-".join(f"{k}={v}" for k, v in switches.items() if v is not None) + f"-seed={cfg.seed}"
    git = git_state()
    kwargs = OmegaConf.to_container(logger_cfg, resolve=True)
    kwargs.pop("job_type", None)
    # passed to wandb.init, so unlike WandbLogger(offline=True) it does not set WANDB_MODE for the later jobs
    mode = kwargs.pop("mode", None) or ("online" if wandb_logged_in() else "offline")
    try:
        logger = get_class(kwargs.pop("_target_"))(
            **kwargs,
            mode=mode,
            name=name,
            group=group,
            job_type=job_type,
            tags=[f"{k}={v}" for k, v in switches.items() if v is not None],
            config=mask(
                {
                    **choices_of(config_groups.identity()),
                    "seed": cfg.seed,
                    "overrides": list(HydraConfig.get().overrides.task),
                    "git_commit": git["commit"],
                    "git_dirty": git["dirty"],
                    "config": OmegaConf.to_container(cfg, resolve=True),
                }
            ),
        )
        # Lightning 2.6 always passes anonymous=None to wandb.init, which wandb 0.31 answers with "The anonymous
        # setting has no effect and will be removed" on every run: left out, wandb's default is the same
        getattr(logger, "_wandb_init", {}).pop("anonymous", None)
        with masked_argv():  # W&B keeps the command line in the run's metadata
            run = logger.experiment  # starts the run now, so a failure is caught here and not mid-training
        if hasattr(run, "define_metric"):  # not on DDP ranks other than zero (a dummy there)
            run.define_metric("epoch")
            for split in ("train", "val", "train_eval"):  # summaries keep the best (lowest) error and loss
                for metric in ("loss", "top1_err", "top5_err"):
                    run.define_metric(f"{split}/{metric}", step_metric="epoch", summary="min")
            run.define_metric("perf/images_per_sec", step_metric="epoch", summary="mean")
            run.define_metric("lr", step_metric="epoch")
            run.define_metric("lrn/*", step_metric="epoch")
            run.define_metric("trainer/global_step")
            run.define_metric("curve/*", step_metric="trainer/global_step")  # the training curve (TrainingCurve)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.warning("W&B could not start (%s: %s); training goes on with the other loggers", type(exc).__name__, reason)
        return None
    return logger


def finish_wandb(loggers: list, status: str, error: str | None) -> None:
    """Close this job's W&B run (WandbLogger would otherwise hand the open run to the next job of a multirun), with
    the run's status and error in its summary and a failing exit code when it failed."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.run.summary["status"] = status
            if error:
                wandb.run.summary["error"] = mask_text(error.splitlines()[0])
        wandb.finish(exit_code=0 if status == "finished" else 1)
