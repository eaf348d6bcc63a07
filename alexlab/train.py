"""The tasks: a composed config in, a trained (or tested) network and its metrics out. No argv, no globals."""

from __future__ import annotations

import json
import logging
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
from omegaconf import DictConfig, OmegaConf

from alexlab.callbacks import (
    CheckpointOnInterrupt,
    Diverged,
    EpochHistory,
    OptunaPruning,
    StopOnDivergence,
    TrainingCurve,
)
from alexlab.distributed import ddp_processes_run_this_job, is_rank_zero
from alexlab.masking import mask, mask_text, masked_argv
from alexlab.model.alexnet import from_torchvision_state_dict
from alexlab.module import AlexNetModule
from alexlab.wandb_runs import wandb_logged_in

log = logging.getLogger("alexlab")
# `import lightning` gives its logger a stderr handler of its own; Hydra's root handlers already print these lines
# (and write them to the run's alexlab.log), so without this every Lightning message shows twice.
logging.getLogger("lightning").handlers.clear()
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning 2.6 on torch 2.14
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")  # torchdata 0.11's loader on torch 2.14
for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    # Lightning 2.6 advertises its cloud logger on every run ("💡 Tip: ... litlogger")
    logging.getLogger(name).addFilter(lambda record: not record.getMessage().startswith("💡 Tip"))

# The config groups that are the paper's ablation switches, plus what else identifies a run.
SWITCHES = ("model", "depth", "dropout", "lrn", "pooling", "activation", "split", "init", "augment", "test_views")
# `ablation` is the group of the paper_ablations sweep (sweeps/ablation/): each option changes one switch.
IDENTITY = (*SWITCHES, "data", "optimizer", "schedule", "trainer", "experiment", "ablation")


# Exit status of a run stopped by SIGTERM or Ctrl-C after saving its checkpoint (sysexits' EX_TEMPFAIL: "try again"):
# the same command with resume=true goes on from it.
EXIT_INTERRUPTED = 75
# Overrides that say how to start a run, not what it is: a resumed run has the same identity without them.
RESUME_OVERRIDES = ("resume=true", "resume=True", "ckpt_path=last")


def train(cfg: DictConfig) -> float:
    """Fit, then test the best checkpoint; write metrics.json. Returns the objective (e.g. best val top-1 error)."""
    return _run(cfg, fit=True)


def test(cfg: DictConfig) -> float:
    """Evaluate `cfg.ckpt_path` on the test split; write metrics.json. Returns the test top-1 error."""
    if not cfg.ckpt_path:
        raise ValueError("alexlab test needs a checkpoint: alexlab test ckpt_path=PATH/TO/last.ckpt")
    return _run(cfg, fit=False)


def _run(cfg: DictConfig, fit: bool) -> float:
    """One job from config to metrics.json. In a multirun, a job that fails (crash, divergence, pruning) is recorded
    in its metrics.json and returns NaN so that the sweep goes on; a job that already finished in this directory
    (a re-run of an interrupted sweep) is not run again."""
    started = time.time()
    if not is_rank_zero():  # a DDP process other than rank zero: trains its shard, writes nothing of the run's
        return objective_value(_fit_and_test(cfg, fit, started), cfg.objective if fit else "test/top1_err")
    run_dir = Path(cfg.paths.run_dir)
    overrides = run_overrides(HydraConfig.get().overrides.task)
    if fit:
        previous = finished_run(run_dir, overrides)
        if previous is not None:
            value = objective_value(previous, cfg.objective)
            log.info("already finished in %s (%s = %.4f): not run again", run_dir, cfg.objective, value)
            return value
    multirun = HydraConfig.get().mode.name == "MULTIRUN"
    record = {"status": "running", "task": "train" if fit else "test", "overrides": overrides, "seed": cfg.seed}
    write_json(run_dir / "metrics.json", record | {"switches": choices_of(IDENTITY), "started": started})
    try:
        metrics = _fit_and_test(cfg, fit, started)
    except (KeyboardInterrupt, SystemExit) as exc:  # SIGTERM or Ctrl-C: checkpoint saved (CheckpointOnInterrupt)
        last = last_checkpoint(run_dir)
        write_json(
            run_dir / "metrics.json",
            record
            | {
                "status": "interrupted",
                "switches": choices_of(IDENTITY),
                "resume_from": str(last) if last.exists() else None,
                "wall_time_s": round(time.time() - started, 2),
            },
        )
        if fit and last.exists():
            log.warning("interrupted; to go on from %s run the same command with resume=true", last)
        raise SystemExit(EXIT_INTERRUPTED) from exc
    except Exception as exc:
        pruned = type(exc).__name__ == "TrialPruned"
        cause = exc
        while type(cause).__name__ == "InstantiationException" and cause.__cause__ is not None:
            cause = cause.__cause__  # Hydra's wrapper says only which target failed; the cause says why
        error = f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
        write_json(
            run_dir / "metrics.json",
            record
            | {
                "status": "pruned" if pruned else "diverged" if isinstance(exc, Diverged) else "failed",
                "error": error,
                "traceback": None if pruned else traceback.format_exc(),
                "switches": choices_of(IDENTITY),
                "wall_time_s": round(time.time() - started, 2),
            },
        )
        if not multirun:
            raise
        if pruned:
            log.info("pruned: %s (run dir: %s)", error, run_dir)
        else:
            log.error("run failed: %s (run dir: %s; the sweep goes on)", error, run_dir)
        return float("nan")

    objective = cfg.objective if fit else "test/top1_err"
    value = objective_value(metrics, objective)
    log.info("%s = %.4f  (run dir: %s)", objective, value, run_dir)
    return value


def _fit_and_test(cfg: DictConfig, fit: bool, started: float) -> dict:
    run_dir = Path(cfg.paths.run_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
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
    if not fit:
        load_state(module, load_checkpoint_state(cfg.ckpt_path), cfg.ckpt_path)
    ckpt_path = fit_checkpoint(cfg, run_dir) if fit else None
    if ckpt_path not in (None, "hpc"):  # a missing, corrupt or unsafe checkpoint, or another network's: one line
        check_fits(module, load_checkpoint_state(ckpt_path), ckpt_path)

    loggers = build_loggers(cfg, job_type="train" if fit else "test")
    history, curve = EpochHistory(), TrainingCurve(cfg.train_curve_every)
    callbacks = [history, curve, StopOnDivergence()]
    if fit:
        callbacks.append(CheckpointOnInterrupt(str(last_checkpoint(run_dir))))
    if cfg.trial.number is not None:
        callbacks.append(OptunaPruning(cfg.trial.storage, cfg.trial.study_name, cfg.trial.number, cfg.objective))
    for name, callback_cfg in (cfg.callbacks or {}).items():
        if name == "lr_monitor" and not loggers:
            continue  # Lightning's LearningRateMonitor refuses to run without a logger
        callbacks.append(instantiate(callback_cfg))
    show_bar = sys.stderr.isatty()
    if show_bar:
        callbacks.append(L.pytorch.callbacks.RichProgressBar())
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        enable_progress_bar=show_bar,
        enable_model_summary=False,
    )
    checkpoint = trainer.checkpoint_callback

    status, error = "finished", None
    results: dict[str, float] = {}
    try:
        with ddp_processes_run_this_job("train" if fit else "test"):
            if fit:
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
                if cfg.test_after_fit:
                    best = checkpoint.best_model_path if checkpoint is not None else ""
                    results.update(_test(trainer, module, datamodule, best or None))
            else:
                results.update(_test(trainer, module, datamodule, None))
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            status = "interrupted"
        elif isinstance(exc, Diverged):
            status = "diverged"
        else:
            status = "pruned" if type(exc).__name__ == "TrialPruned" else "failed"
        if oom_message(exc, cfg.data.batch_size):
            raise OutOfMemory(oom_message(exc, cfg.data.batch_size)) from exc
        raise
    finally:
        metrics = collect_metrics(cfg, trainer, history.history, curve.curve, results, status, error, started, fit)
        if trainer.is_global_zero and status == "finished":
            write_json(run_dir / "metrics.json", metrics)
        finish_wandb(loggers, status, error)
    return metrics


def objective_value(metrics: dict, objective: str) -> float:
    return metrics.get("best", {}).get(objective, metrics.get("final", {}).get(objective, float("nan")))


def finished_run(run_dir: Path, overrides: list[str]) -> dict | None:
    """The metrics of a training that already finished in `run_dir` with these overrides, else None. A run dir
    that holds another configuration's run is never overwritten."""
    try:
        previous = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if previous.get("task", "train") != "train":
        return None
    if sorted(previous.get("overrides", [])) != sorted(overrides):
        raise FileExistsError(
            f"{run_dir} already holds a run with other overrides ({' '.join(previous.get('overrides', []))}); "
            "run in a new directory (hydra.run.dir / hydra.sweep.dir)"
        )
    return previous if previous.get("status") == "finished" else None


def fit_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """Where fit starts. A run dir only holds checkpoints of an unfinished run with these same overrides
    (finished_run refuses any other), so it goes on from them: from the hpc_ckpt_<n>.ckpt that Lightning's SLURM
    auto-requeue saved before this job was requeued (launcher=slurm), else from checkpoints/last.ckpt (saved at
    every epoch's end and by CheckpointOnInterrupt); else from cfg.ckpt_path (`ckpt_path=last`: see cli's resume)."""
    last = last_checkpoint(run_dir)
    saved = [*run_dir.glob("hpc_ckpt_*.ckpt"), *([last] if last.exists() else [])]
    if saved:
        newest = max(saved, key=lambda path: path.stat().st_mtime)  # a SIGTERM after the requeue's hpc_ckpt
        log.info("resuming from %s", newest)
        return str(last) if newest == last else "hpc"
    if cfg.ckpt_path == "last":
        log.warning("ckpt_path=last: no checkpoint in %s, starting from scratch", run_dir)
        return None
    return cfg.ckpt_path


def last_checkpoint(run_dir: Path) -> Path:
    """Where a run's latest checkpoint is: the checkpoint callback's save_last (conf/callbacks/default.yaml), which
    CheckpointOnInterrupt overwrites when a signal stops the run."""
    return run_dir / "checkpoints" / "last.ckpt"


def run_overrides(overrides) -> list[str]:
    """A run's identity: its overrides without the ones that only say to resume it or how long its sweep goes on,
    secrets masked (as written)."""
    from alexlab.sweep import is_sweep_control

    return [mask_text(o) for o in overrides if o not in RESUME_OVERRIDES and not is_sweep_control(o)]


def find_resumable_run(output_root: Path, overrides: list[str]) -> Path | None:
    """`alexlab train OVERRIDES resume=true`: the newest run under output_root/runs with these overrides that did
    not finish (interrupted, killed, failed) and left a checkpoint, or None."""
    wanted = sorted(run_overrides(overrides))
    candidates = []
    for metrics_path in (output_root / "runs").glob("*/metrics.json"):
        try:
            record = json.loads(metrics_path.read_text())
        except (OSError, ValueError):
            continue
        has_checkpoint = last_checkpoint(metrics_path.parent).exists()
        same = sorted(record.get("overrides", [])) == wanted
        if same and record.get("status") != "finished" and record.get("task") == "train" and has_checkpoint:
            candidates.append(metrics_path.parent)
    return max(candidates, key=lambda d: d.name, default=None)


def choices_of(groups: tuple[str, ...]) -> dict[str, str | None]:
    choices = HydraConfig.get().runtime.choices
    return {name: choices.get(name) for name in groups}


def _test(trainer: L.Trainer, module, datamodule, ckpt_path: str | None) -> dict[str, float]:
    if ckpt_path:
        # weights only, through the same safe loader as `alexlab test`
        load_state(module, load_checkpoint_state(ckpt_path), ckpt_path)
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def collect_metrics(cfg, trainer, history, curve, test_results, status, error, started, fit) -> dict:
    final = {k: v for k, v in history[-1].items() if "/" in k} if history else {}
    final.update(test_results)
    best: dict[str, float] = {}
    if history:
        best_row = min(history, key=lambda row: row.get(cfg.objective, float("inf")))
        best = {k: v for k, v in best_row.items() if k.startswith(("val/", "train_eval/"))}
        best["epoch"] = best_row["epoch"]
    checkpoint = trainer.checkpoint_callback
    return {
        "status": status,
        "error": error,
        "task": "train" if fit else "test",
        "objective": cfg.objective,
        "final": final,
        "best": best,
        "history": history,
        "curve": curve,
        "switches": choices_of(IDENTITY),
        "seed": cfg.seed,
        "overrides": run_overrides(HydraConfig.get().overrides.task),
        "checkpoints": {
            "best": getattr(checkpoint, "best_model_path", "") or None,
            "last": getattr(checkpoint, "last_model_path", "") or None,
        },
        "parameters": sum(p.numel() for p in trainer.lightning_module.parameters()),
        "git": git_state(),
        "versions": {"torch": torch.__version__, "lightning": L.__version__},
        "wall_time_s": round(time.time() - started, 2),
    }


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a crash mid-write never leaves a half file where a good one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(mask(data), indent=2, default=str) + "\n")
    os.replace(tmp, path)


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
        raise ValueError(f"checkpoint {path} has no state_dict: not a Lightning checkpoint")
    return checkpoint["state_dict"]


def load_tensors(path: str, what: str):
    """torch.load(weights_only=True): tensors and plain data only, so a file a user was sent cannot run code. A
    missing, truncated or foreign file, or one that holds other objects, is refused in one line."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        unsafe = re.search(r"unsupported GLOBAL (\S+)", str(exc))
        if unsafe:
            raise ValueError(
                f"{what} {path} holds a Python object ({unsafe.group(1)}), not only weights: refused, as unpickling "
                "it could run code; alexlab loads tensors only (weights_only=True)"
            ) from exc
        raise ValueError(f"{what} {path} cannot be read ({type(exc).__name__}): truncated or not a {what}") from exc


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
        raise ValueError(f"{source} does not fit this network (another architecture?): {'; '.join(parts)}")


def load_state(target: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `target`, or fail in one line naming the layers that do not fit."""
    check_fits(target, state, source)
    target.load_state_dict(state)


def load_weights(path: str) -> dict[str, torch.Tensor]:
    """A network state_dict from `path`: alexlab's own, a Lightning checkpoint's, or torchvision alexnet's."""
    state = load_tensors(path, "weights file")
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} holds no state_dict")
    if "state_dict" in state:
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    if "features.0.weight" in state:
        state = from_torchvision_state_dict(state)
    return state


class OutOfMemory(RuntimeError):
    """A run ran out of GPU or CPU memory; the message says at which batch size and what to try."""


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
                loggers.append(L.pytorch.loggers.CSVLogger(cfg.paths.run_dir, name="csv", version=""))
        else:
            loggers.append(instantiate(logger_cfg))
    return loggers


def start_wandb(cfg: DictConfig, logger_cfg: DictConfig, job_type: str):
    """A WandbLogger for this job, or None (with one warning) when W&B cannot start: training goes on without it.

    The run is self-describing: the switches (and every other group choice), seed, overrides and git state are
    top-level config keys (for W&B's group-by, filters and parallel coordinates), the whole composed config is
    under "config"; the name and tags are the switch values; the group is the sweep directory's name."""
    switches = choices_of((*SWITCHES, "ablation"))  # ablation: the option of a paper_ablations sweep, if any
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
                    **choices_of(IDENTITY),
                    "seed": cfg.seed,
                    "overrides": list(HydraConfig.get().overrides.task),
                    "git_commit": git["commit"],
                    "git_dirty": git["dirty"],
                    "config": OmegaConf.to_container(cfg, resolve=True),
                }
            ),
        )
        with masked_argv():  # W&B keeps the command line in the run's metadata
            run = logger.experiment  # starts the run now, so a failure is caught here and not mid-training
        if hasattr(run, "define_metric"):  # not on DDP ranks other than zero (a dummy there)
            run.define_metric("epoch")
            for split in ("train", "val", "train_eval"):  # summaries keep the best (lowest) error and loss
                for metric in ("loss", "top1_err", "top5_err"):
                    run.define_metric(f"{split}/{metric}", step_metric="epoch", summary="min")
            run.define_metric("perf/images_per_sec", step_metric="epoch", summary="mean")
            run.define_metric("lr", step_metric="epoch")
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
