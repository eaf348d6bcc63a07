"""A run's loggers: the config's (W&B, CSV, TensorBoard), W&B started so that its run describes itself and closed with
the run's status; a W&B that cannot start leaves the other loggers, and a CSV log, in its place."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from alexlab import config_groups, metrics, record, wandb_runs
from alexlab.csv_log import CSVLogger
from alexlab.masking import mask, mask_text, masked_argv
from alexlab.wandb_runs import wandb_logged_in

log = logging.getLogger("alexlab")


def choices_of(groups: tuple[str, ...]) -> dict[str, str | None]:
    choices = HydraConfig.get().runtime.choices
    return {name: choices.get(name) for name in groups}


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
    git = record.git_state()
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
                    wandb_runs.SEED: cfg.seed,
                    wandb_runs.OVERRIDES: record.as_typed(HydraConfig.get().overrides.task),
                    wandb_runs.GIT_COMMIT: git["commit"],
                    wandb_runs.GIT_DIRTY: git["dirty"],
                    wandb_runs.CONFIG: OmegaConf.to_container(cfg, resolve=True),
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
            run.define_metric(metrics.IMAGES_PER_SEC, step_metric="epoch", summary="mean")
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
