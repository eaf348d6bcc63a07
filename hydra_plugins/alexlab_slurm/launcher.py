"""`hydra/launcher=alexlab_slurm`: hydra-submitit-launcher's SLURM launcher, with a wait that never hangs on a job
that SLURM ended.

submitit's launcher submits the sweep's jobs as one array and waits for each job's result file, asking `sacct` how a
job without one is doing; where the cluster keeps no accounting, `sacct` answers nothing and every job stays UNKNOWN,
so a job that SLURM ended without a result (an administrator's scancel, a node failure, a time limit, a requeue
killed before it started) keeps the sweep waiting forever. This launcher submits the same array the same way, then
waits on SLURM's own word for each job (alexlab.slurm: scontrol, then sacct): a job that ended without a result file
is recorded `failed` in its run directory with SLURM's reason in one line (alexlab.record.ended_outside), a job that
SLURM holds (a requeue held after its launch failed, `scontrol hold`) is cancelled and recorded so after
`held_timeout_s`, and the sweep goes on to its summary and report.
"""

# (no `from __future__ import annotations`: Hydra imports plugins outside sys.modules, where dataclasses cannot
# resolve string annotations)
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger("alexlab")
# How long the sweep waits for SLURM to take the jobs it cancelled off its queue (slurmctld does it asynchronously)
CANCEL_WAIT_S = 60


@dataclass
class AlexlabSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.alexlab_slurm.launcher.AlexlabSlurmLauncher"
    # seconds between two looks at the sweep's jobs (one scontrol call for the whole array)
    poll_s: float = 5.0
    # seconds a job may stay held by SLURM (it would wait for a person) before it is cancelled and recorded failed
    held_timeout_s: float = 300.0
    # seconds a job SLURM says ended may still get its result file (a shared filesystem's cache shows it late) before
    # it is recorded failed; on a node's own disk the file is there when the job ends
    result_grace_s: float = 15.0


ConfigStore.instance().store(group="hydra/launcher", name="alexlab_slurm", node=AlexlabSlurmConf, provider="alexlab")


class AlexlabSlurmLauncher(SlurmLauncher):
    def __init__(
        self, poll_s: float = 5.0, held_timeout_s: float = 300.0, result_grace_s: float = 15.0, **params: Any
    ) -> None:
        from alexlab.errors import BadValue

        waits = {"poll_s": poll_s, "held_timeout_s": held_timeout_s, "result_grace_s": result_grace_s}
        for name, value in waits.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise BadValue(f"hydra.launcher.{name}={value}: a number of seconds >= 0")
        super().__init__(**params)
        self.poll_s, self.held_timeout_s, self.result_grace_s = (float(value) for value in waits.values())

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        """As SlurmLauncher.launch (the same executor, parameters and array), waiting with `wait` instead of on
        each job's result file alone."""
        import submitit

        init_keys = {"submitit_folder", "max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params["max_num_timeout"],
        )
        shared = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
                  "stderr_to_stdout"}  # fmt: skip  # BaseQueueConf's keys, the rest are slurm_*
        executor.update_parameters(
            **{k if k in shared else f"slurm_{k}": v for k, v in self.params.items() if k not in init_keys}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs_params = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", number, " ".join(filter_overrides(overrides)))
            jobs_params.append((list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}",
                                Singleton.get_state()))  # fmt: skip
        jobs = executor.map_array(self, *zip(*jobs_params, strict=True))
        numbers = range(initial_job_idx, initial_job_idx + len(jobs))
        return self.wait(jobs, [list(o) for o in job_overrides], [self.job_dir(sweep_dir, n) for n in numbers])

    def job_dir(self, sweep_dir: Path, number: int) -> Path | None:
        """A job's run directory: alexlab's hydra.sweep.subdir is the job number; another subdir is not known here."""
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        return sweep_dir / str(number) if subdir == "${hydra.job.num}" else None

    def wait(self, jobs: list, overrides: list[list[str]], run_dirs: list[Path | None]) -> list[JobReturn]:
        """Each job's JobReturn once it has one, or once SLURM ended it without one (recorded failed, NaN)."""
        from alexlab import slurm

        results: dict[int, JobReturn] = {}
        ended_at: dict[int, float] = {}  # when SLURM was first seen to have ended a job without a result file
        held_since: dict[int, float] = {}
        cancelled: list[str] = []
        arrays = sorted({job.job_id.partition("_")[0] for job in jobs})
        while len(results) < len(jobs):
            states: dict = {}
            for array in arrays:
                states |= slurm.array_states(array)
            now = time.monotonic()
            for i, job in enumerate(jobs):
                if i in results:
                    continue
                if job.paths.result_pickle.exists():
                    results[i] = job.results()[0]  # as submitit's launcher: a job that raised raises here
                    continue
                state = slurm.job_state(job.job_id, states)
                if not state.held:
                    held_since.pop(i, None)
                if state.ended:
                    if now - ended_at.setdefault(i, now) >= self.result_grace_s:
                        results[i] = self.ended_without_result(state.line(), overrides[i], run_dirs[i])
                elif state.held and now - held_since.setdefault(i, now) >= self.held_timeout_s:
                    slurm.cancel(job.job_id)
                    cancelled.append(job.job_id)
                    line = f"{state.line()}: held for {self.held_timeout_s:g} s, cancelled"
                    results[i] = self.ended_without_result(line, overrides[i], run_dirs[i])
            if len(results) < len(jobs):
                time.sleep(self.poll_s)
        self.wait_off_queue(cancelled, arrays)
        return [results[i] for i in range(len(jobs))]

    def wait_off_queue(self, cancelled: list[str], arrays: list[str]) -> None:
        """Until SLURM no longer lists the jobs the sweep cancelled as waiting (at most CANCEL_WAIT_S), so that
        none of them can still start once the sweep has recorded it failed and moved on."""
        from alexlab import slurm

        deadline = time.monotonic() + CANCEL_WAIT_S
        while cancelled:
            states: dict = {}
            for array in arrays:
                states |= slurm.array_states(array)
            cancelled = [job for job in cancelled if not slurm.job_state(job, states).ended]
            if cancelled and time.monotonic() >= deadline:
                log.warning("SLURM still lists %s %s s after scancel", ", ".join(cancelled), CANCEL_WAIT_S)
                return
            if cancelled:
                time.sleep(min(self.poll_s, 1.0))

    @staticmethod
    def ended_without_result(line: str, overrides: list[str], run_dir: Path | None) -> JobReturn:
        """A job SLURM ended: recorded failed with SLURM's reason, and NaN for the sweep (as train.py returns for a
        job of a multirun that failed), so that the sweep goes on."""
        from alexlab import record

        value = math.nan
        if run_dir is not None:
            held = record.ended_outside(run_dir, overrides, line)
            value = held.value() if held.finished else math.nan
            if not held.finished:
                log.error("run failed: %s (run dir: %s; the sweep goes on)", line, run_dir)
        else:
            log.error("run failed: %s (the sweep goes on)", line)
        return JobReturn(overrides=overrides, working_dir=str(run_dir or ""), task_name="alexlab",
                         status=JobStatus.COMPLETED, _return_value=value)  # fmt: skip
