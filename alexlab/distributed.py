"""DDP inside Hydra jobs: the extra processes run this one job, and only rank zero writes the run's files.

Lightning's DDP (`strategy=ddp`, processes started with Popen) starts ranks 1..N-1 by running the command line
again. Under Hydra it appends `hydra.run.dir=<the run dir>` to sys.argv: in a multirun that command is the whole
sweep (`-m seed=0,1`), so every job would start another sweep, and the run dir it names is not the job's directory
(a known Hydra + Lightning trap: Lightning-AI/pytorch-lightning#11617, facebookresearch/hydra#2070). Here the extra
processes get the command of this job alone: `alexlab train|test [--config-path P] --config-name N <the job's
overrides> hydra.run.dir=<the job's directory>`, no .hydra/ of their own and no log file (console only).

A cluster that starts every rank itself (SLURM's srun, torchrun) is unaffected: Lightning launches nothing there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch

from alexlab.record import as_typed

# What Lightning's launcher puts into os.environ for its processes; restored after each job of a multirun, so
# that the next job's DDP starts afresh (a new port) instead of finding the previous job's settings.
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_rank_zero() -> bool:
    """Whether this process is global rank zero, known before the Trainer exists from what the launchers set:
    RANK (torchrun), SLURM_PROCID (srun), else LOCAL_RANK (Lightning's extra processes) on node NODE_RANK."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    if (_get_rank() or 0) != 0:
        return False
    if "RANK" in os.environ or "SLURM_PROCID" in os.environ:
        return True
    return int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0))) == 0  # a later node's local rank 0


def job_command(subcommand: str, local_rank: int, extra: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The command (and working directory) that runs this Hydra job as DDP rank `local_rank`, with the overrides
    `extra` in place of the job's own for the same keys."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hydra = HydraConfig.get()
    command = [sys.executable, "-m", "alexlab", subcommand]
    for source in hydra.runtime.config_sources:
        if source.provider == "command-line":  # a sweep file's folder (alexlab sweep NAME) or --config-path
            command += ["--config-path", source.path]
    replaced = {override.partition("=")[0].lstrip("+~") for override in extra}
    overrides = [o for o in as_typed(hydra.overrides.task) if o.partition("=")[0].lstrip("+~") not in replaced]
    command += ["--config-name", hydra.job.config_name, *overrides, *extra]
    command += [
        f'hydra.run.dir="{os.path.abspath(hydra.runtime.output_dir)}"',
        "hydra.output_subdir=null",
        f"hydra.job.name={hydra.job.name}_rank{local_rank}",
        "hydra.job_logging.root.handlers=[console]",
        "~hydra.job_logging.handlers.file",  # rank zero's alexlab.log is the run's log
    ]
    return command, get_original_cwd()


@contextmanager
def ddp_processes_run_this_job(subcommand: str, extra: tuple[str, ...] = ()) -> Iterator[None]:
    """While fitting and testing one job: DDP's extra processes run this job (see the module docstring) as
    `alexlab SUBCOMMAND <its overrides> <extra>`; after it, the process group is closed and the launcher's
    environment restored, so the next job of a multirun starts its own processes."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    saved_env = {key: os.environ.get(key) for key in LAUNCHER_ENV}
    original = getattr(subprocess_script, "_hydra_subprocess_cmd", None)
    if original is None:
        raise RuntimeError("this Lightning version starts DDP processes differently; alexlab needs lightning<2.7")
    subprocess_script._hydra_subprocess_cmd = partial(job_command, subcommand, extra=tuple(extra))
    try:
        yield
    finally:
        subprocess_script._hydra_subprocess_cmd = original
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
