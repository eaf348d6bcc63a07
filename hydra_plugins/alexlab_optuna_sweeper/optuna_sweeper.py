"""The Optuna sweeper: each trial is one Hydra job, asked from a study in a storage and told its outcome.

A drop-in for Hydra's official hydra-optuna-sweeper (1.3.x: the same keys, search expressions, warnings and
`optimization_results.yaml`, its test suite in tests/optuna_official), for any Hydra app: a trial's value is what
the task function returns (a number, or one per direction of a multi-objective study), and a trial's job gets only
its params as overrides. What alexlab adds:

- The trial handle reaches the job through its environment (hydra.job.env_set: ALEXLAB_OPTUNA_STORAGE, _STUDY,
  _TRIAL; alexlab.optuna_storage.current_trial), so that alexlab's pruning callback reports to its trial whether
  the job runs in this process or another one, and no app needs a config node for it. Trial N runs in
  `<sweep dir>/N` (hydra.sweep.subdir).
- A job that wrote an alexlab run record is classified by it: pruned (by the study's pruner),
  failed or diverged, with its error; any app whose task raises optuna.TrialPruned is pruned too.
- The study lives in a storage (by default the journal file <sweep dir>/optuna.journal), so re-running the same
  command resumes it: trials left unfinished by an interrupted or killed sweep are failed as `interrupted`, asked
  again first, and not counted towards `n_trials`.
- Several workers (the same command started several times, on one machine or many) share a study: each new trial
  is reserved under the storage's lock (alexlab.optuna_storage.study_lock) only while the study holds fewer than
  `n_trials` trials that count, so that together they run exactly `n_trials`, each trial in one worker.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from alexlab import record
from alexlab.errors import BadValue, SweepFailed, first_line
from alexlab.masking import mask_text
from alexlab.optuna_storage import PRUNER_ATTR, TRIAL_ENV, load_trial, open_storage, study_lock
from alexlab.record import Status
from hydra_plugins.alexlab_optuna_sweeper.search_space import (  # noqa: F401 (the official plugin's tests read them here)
    create_optuna_distribution_from_config,
    create_optuna_distribution_from_override,
    create_params_from_overrides,
    grid_of,
    override_value,
    parse_search_space,
    quote,
    suggest,
)
from hydra_plugins.alexlab_optuna_sweeper.trials import (
    best_trial,
    count_done,
    format_params,
    parse_directions,
    process_alive,
    read_record,
    tell,
    temporary,
    trial_outcome,
    write_trials_csv,
    write_yaml,
)

log = logging.getLogger(__name__)

DEFAULT_STUDY_NAME = "alexlab"
SEARCH_SPACE_URL = "https://hydra.cc/docs/upgrades/1.1_to_1.2/changes_to_sweeper_config/"
STARTED_ATTR = "sweeps_started"  # the study's count of the sweeps (workers) that opened it


class OptunaSweeperImpl(Sweeper):
    """The sweeper, under the official plugin's name for its implementation (OptunaSweeper below is what
    hydra/sweeper=optuna instantiates)."""

    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        search_space: DictConfig | None,
        custom_search_space: str | None,
        params: DictConfig | None,
        pruner: Any = None,
    ) -> None:
        self.directions = parse_directions(direction)
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if value < 1:
                raise BadValue(f"hydra.sweeper.{key} must be at least 1, got {value}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise BadValue(f"hydra.sweeper.max_failure_rate must be between 0 and 1, got {max_failure_rate}")
        self.sampler_cfg = sampler  # a sampler config (instantiated in open_study) or a sampler
        self.pruner_cfg = pruner if pruner is not None else OmegaConf.create({"_target_": "optuna.pruners.NopPruner"})
        self.storage_spec, self.study_name = storage, study_name or DEFAULT_STUDY_NAME
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.search_space, self.params = search_space, params
        self.search_space_distributions: dict[str, BaseDistribution] = {}
        self.custom_search_space = None
        if custom_search_space:
            try:
                self.custom_search_space = get_method(custom_search_space)
            except Exception as exc:
                why = first_line(exc, typed=True)
                raise BadValue(
                    f"hydra.sweeper.custom_search_space={custom_search_space}: cannot import it ({why})"
                ) from None
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def _process_searchspace_config(self) -> None:
        """Hydra 1.1's `search_space`: read, with the official plugin's warnings (`params` wins over it)."""
        if self.search_space is None:
            return
        if self.params is not None:
            warnings.warn(
                "Both hydra.sweeper.params and hydra.sweeper.search_space are configured.\nHydra will use "
                f"hydra.sweeper.params for defining search space.\n{SEARCH_SPACE_URL}",
                stacklevel=2,
            )
            return
        warnings.warn(
            "`hydra.sweeper.search_space` is deprecated and will be removed in the next major release.\n"
            f"Please configure with `hydra.sweeper.params`.\n{SEARCH_SPACE_URL}\n",
            UserWarning,
            stacklevel=2,
        )
        self.search_space_distributions = {
            str(name): create_optuna_distribution_from_config(entry) for name, entry in self.search_space.items()
        }

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).expanduser().absolute()
        if self.storage_spec is None:
            self.storage_spec = str(self.sweep_dir / "optuna.journal")
        elif "://" not in self.storage_spec:
            self.storage_spec = os.path.abspath(os.path.expanduser(self.storage_spec))

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        sweeps = [f"{key}={value}" for key, value in (self.params or {}).items()] + list(arguments)
        space, fixed = parse_search_space(sweeps)
        space = {name: d for name, d in self.search_space_distributions.items() if name not in fixed} | space
        study = self.open_study(space)
        self.write_study_file(space, sweeps, list(fixed.values()))
        self.recover(study)
        self.write_results(study)
        log.info(
            "Optuna study '%s' in %s: %d of %d trials done; sampler %s, pruner %s, %s",
            self.study_name,
            self.storage_spec,
            count_done(study),
            self.n_trials,
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            " and ".join(self.directions),
        )
        try:
            while trials := self.ask_batch(study, space):
                self.run_batch(study, trials, list(fixed.values()))
                self.write_results(study)
        finally:
            self.write_results(study)
        if len(self.directions) > 1:
            log.info("Pareto front: %d trials", len(study.best_trials))
        elif (best := best_trial(study)) is not None:
            log.info("Best trial %d: value %.6g, params %s", best.number, best.value, format_params(best.params))


class OptunaSweeper(OptunaSweeperImpl):
    """hydra/sweeper=optuna (config.OptunaSweeperConf)."""

    def open_study(self, space: dict[str, BaseDistribution]) -> optuna.Study:
        """The study, created or loaded (resumed), with the configured sampler and pruner."""
        sampler_kwargs = self.sampler_arguments(space)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with study_lock(self.storage_spec, self.study_name):  # workers starting at once: one creates the tables
            storage = optuna.storages.get_storage(open_storage(self.storage_spec))
            study = optuna.create_study(
                study_name=self.study_name, storage=storage, directions=self.directions, load_if_exists=True
            )
            held = [direction.name.lower() for direction in study.directions]
            if held != self.directions:
                raise BadValue(
                    f"the study '{self.study_name}' in {self.storage_spec} has direction {' and '.join(held)}, not "
                    f"hydra.sweeper.direction={' and '.join(self.directions)}; choose another study_name or storage "
                    "for a new study"
                )
            started = study.user_attrs.get(STARTED_ATTR, 0)  # the sweeps (workers) of this study before this one
            study.set_user_attr(STARTED_ATTR, started + 1)
            # a resumed study, or another worker of it: seeded as the first sweep, the sampler would propose the same
            # params again; this sum grows with each sweep that opens the study
            seed_offset = len(study.trials) + started
        if isinstance(self.sampler_cfg, optuna.samplers.BaseSampler):
            sampler = self.sampler_cfg  # given as a sampler (the official tests build the sweeper so)
        else:
            seed = self.sampler_cfg.get("seed")
            if seed is not None:
                sampler_kwargs["seed"] = seed + seed_offset
            sampler = instantiate(self.sampler_cfg, **sampler_kwargs)
        study = optuna.load_study(
            study_name=self.study_name, storage=storage, sampler=sampler, pruner=instantiate(self.pruner_cfg)
        )
        # the jobs load their trial from the storage (load_trial) and ask this pruner whether to stop
        study.set_user_attr(PRUNER_ATTR, OmegaConf.to_container(self.pruner_cfg, resolve=True))
        # as Hydra's basic sweeper does; whole, for another worker's check_sweep_dir reads it
        multirun = self.sweep_dir / record.MULTIRUN
        temporary(multirun).write_text(mask_text(OmegaConf.to_yaml(self.config)))  # secrets: alexlab.masking
        os.replace(temporary(multirun), multirun)
        return study

    def sampler_arguments(self, space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """What the configured sampler needs besides its config: the grid for GridSampler (which caps n_trials),
        NSGA-II's constraints_func given as "module.function"."""
        if isinstance(self.sampler_cfg, optuna.samplers.BaseSampler):
            return {}
        target = self.sampler_cfg._target_
        if target == "optuna.samplers.CmaEsSampler":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise BadValue("hydra/sweeper/sampler=cmaes needs the cmaes package: pip install cmaes") from None
        constraints = self.sampler_cfg.get("constraints_func")
        if isinstance(constraints, str):
            try:
                return {"constraints_func": get_method(constraints)}
            except Exception as exc:
                why = first_line(exc, typed=True)
                raise BadValue(
                    f"hydra.sweeper.sampler.constraints_func={constraints}: cannot import it ({why})"
                ) from None
        if target != "optuna.samplers.GridSampler":
            return {}
        grid = grid_of(space)
        size = math.prod(len(values) for values in grid.values())
        if size < self.n_trials:
            log.info("The grid has %d points: n_trials %d -> %d", size, self.n_trials, size)
            self.n_trials = size
        return {"search_space": grid}

    def recover(self, study: optuna.Study) -> None:
        """Fail the trials left RUNNING by a killed sweep of this host (their process is gone) as interrupted, and
        enqueue the params of every interrupted trial once, so that they run first and the study loses none. The
        RUNNING trials of live workers (and of other hosts, whose processes cannot be seen) are left alone."""
        with study_lock(self.storage_spec, self.study_name):  # another worker may be recovering the same trials
            self._recover(study)

    def _recover(self, study: optuna.Study) -> None:
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
            if worker_host == host and pid.isdigit() and not process_alive(int(pid)):
                live = load_trial(self.storage_spec, self.study_name, trial.number)
                live.set_user_attr("interrupted", True)
                live.set_user_attr("error", f"interrupted: its sweep (pid {pid}) is gone")
                tell(study, trial.number, TrialState.FAIL)
                log.warning("Trial %d was left running by a sweep that is gone: failed as interrupted", trial.number)
        requeued = {t.user_attrs.get("requeued_from") for t in study.get_trials(deepcopy=False)}
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if trial.user_attrs.get("interrupted") and trial.number not in requeued:
                study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number})
                log.info("Trial %d was interrupted: its params %s run again", trial.number, format_params(trial.params))

    def reserve(self, study: optuna.Study) -> optuna.Trial | None:
        """A new trial of this worker, or None once the study holds n_trials that count (count_done). Atomic across
        workers: two that ask at the same instant never start more than n_trials between them."""
        with study_lock(self.storage_spec, self.study_name):
            if count_done(study) >= self.n_trials:
                return None
            trial = study.ask()
            trial.set_user_attr("worker", self.worker)  # before the lock is let go: recover() reads it
            return trial

    def ask_batch(self, study: optuna.Study, space: dict[str, BaseDistribution]) -> list[optuna.Trial]:
        """Up to n_jobs new trials; none once the study is full (its last trials run here or in other workers)."""
        trials = []
        while len(trials) < self.n_jobs and (trial := self.ask(study, space)) is not None:
            trials.append(trial)
        return trials

    def ask(self, study: optuna.Study, space: dict[str, BaseDistribution]) -> optuna.Trial | None:
        """A reserved trial with its params suggested, or None when the study is full."""
        trial = self.reserve(study)
        if trial is None:
            return None
        try:
            for name, distribution in space.items():
                suggest(trial, name, distribution)
            if self.custom_search_space is not None:
                self.custom_search_space(self.config, trial)
        except Exception as exc:
            trial.set_user_attr("error", first_line(exc, typed=True))
            tell(study, trial, TrialState.FAIL)
            raise
        return trial

    def job_overrides(self, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        """The trial's params and the fixed overrides; its handle only in Hydra's part of the config (the job's
        environment), which every app has: no app needs a node for it."""
        params = [f"{name}={self.override_value(name, value)}" for name, value in trial.params.items()]
        handle = {"storage": self.storage_spec, "study": self.study_name, "trial": str(trial.number)}
        env = [f"++hydra.job.env_set.{TRIAL_ENV[key]}={quote(value)}" for key, value in handle.items()]
        return [*fixed, *params, *env, f"hydra.sweep.subdir={trial.number}"]

    def override_value(self, name: str, value: Any) -> str:
        """`value` in override syntax; a number chosen for a config group (depth=5) becomes the option name '5'."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self.is_config_group(name):
            return quote(str(value))
        return override_value(value)

    def is_config_group(self, name: str) -> bool:
        parent, _, child = name.lstrip("+~").partition("@")[0].rpartition("/")
        return child in self.hydra_context.config_loader.list_groups(parent)

    def run_batch(self, study: optuna.Study, trials: list[optuna.Trial], fixed: list[str]) -> None:
        """Run the trials as one launcher batch and tell the study each outcome. On an interrupt (Ctrl-C, SIGTERM),
        the trials whose run did not finish are failed as interrupted before the interrupt goes on. More failed
        trials in the batch than max_failure_rate allows stop the sweep, with the last failure's error."""
        overrides = [self.job_overrides(trial, fixed) for trial in trials]
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        except Exception as exc:  # e.g. a trial's overrides do not compose: those trials fail, the study goes on
            returns = [None] * len(trials)
            errors = [
                self.conclude(study, t, None, launch_error=f"the job did not run: {first_line(exc, typed=True)}")
                for t in trials
            ]
        except BaseException as exc:
            for trial in trials:
                self.conclude(study, trial, None, interrupted=type(exc).__name__)
            raise
        else:
            errors = [self.conclude(study, t, r) for t, r in zip(trials, returns, strict=True)]
        failed = [error for error in errors if error is not None]
        if failed and len(failed) / len(trials) > self.max_failure_rate:
            raised = [r._return_value for r in returns if r is not None and r.status == JobStatus.FAILED]
            raise SweepFailed(
                f"the Optuna study stopped: {len(failed)} of the {len(trials)} trials of a batch failed, more than "
                f"max_failure_rate={self.max_failure_rate:g} (the last: {failed[-1]}); see "
                f"{self.sweep_dir / 'trials.csv'}"
            ) from (raised[-1] if raised else None)

    def conclude(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        job_return: JobReturn | None,
        launch_error: str | None = None,
        interrupted: str | None = None,
    ) -> str | None:
        """Tell the study the outcome of one trial and log it in one line; the error when it failed."""
        run_dir = self.run_dir(trial.number, job_return)
        ended = read_record(run_dir)
        state, values, error = trial_outcome(job_return, ended, len(self.directions))
        if job_return is None and (
            ended is None or ended.status not in (Status.FINISHED, Status.PRUNED, Status.FAILED)
        ):
            # the launch was cut short and this trial's job did not end (or did not start)
            state, values = TrialState.FAIL, None
            error = f"interrupted ({interrupted})" if interrupted else launch_error
            if interrupted:
                trial.set_user_attr("interrupted", True)
        if error:
            trial.set_user_attr("error", error)
        tell(study, trial, state, values)
        if state == TrialState.COMPLETE:
            outcome = " ".join(f"{v:.6g}" for v in values)
        else:
            outcome = error or (ended and ended.error) or ""
        log.info("Trial %d %s  %s  %s  (%s)", trial.number, state.name, format_params(trial.params), outcome, run_dir)
        return error if state == TrialState.FAIL else None

    def run_dir(self, number: int, job_return: JobReturn | None) -> Path:
        output_dir = OmegaConf.select(job_return.hydra_cfg, "hydra.runtime.output_dir") if job_return else None
        return Path(output_dir) if output_dir else self.sweep_dir / str(number)

    def objective(self) -> str | None:
        """alexlab's name for what its task returns (None for other apps)."""
        return OmegaConf.select(self.config, "objective", default=None)

    def write_study_file(self, space: dict[str, BaseDistribution], sweeps: list[str], fixed: list[str]) -> None:
        given = dict(override.partition("=")[::2] for override in sweeps)
        study_file = {
            "study_name": self.study_name,
            "storage": self.storage_spec,
            "direction": self.directions[0] if len(self.directions) == 1 else self.directions,
            "objective": self.objective(),
            "n_trials": self.n_trials,
            "params": {name: given.get(name) for name in space},
            "fixed": fixed,
            # a sampler config, or a sampler given as an object (as the official tests build the sweeper)
            "sampler": getattr(self.sampler_cfg, "_target_", None) or type(self.sampler_cfg).__name__,
            "pruner": self.pruner_cfg._target_,
        }
        write_yaml(self.sweep_dir / "optuna_study.yaml", study_file)

    def write_results(self, study: optuna.Study) -> None:
        """optimization_results.yaml as the official plugin writes it (name, best_params, best_value; or the Pareto
        front as `solutions` for several directions), and what alexlab adds: the study, its trials' states."""
        trials = study.get_trials(deepcopy=False)
        if len(self.directions) > 1:
            front = study.best_trials if any(t.state == TrialState.COMPLETE for t in trials) else []
            results: dict[str, Any] = {"name": "optuna", "solutions": [
                {"params": dict(t.params), "values": list(t.values), "trial": t.number} for t in front
            ]}  # fmt: skip
        else:
            best = best_trial(study)
            results = {
                "name": "optuna",
                "best_params": dict(best.params) if best else None,
                "best_value": best.value if best else None,
                "best_trial": best.number if best else None,
            }
        results |= {
            "study_name": self.study_name,
            "storage": self.storage_spec,
            "n_trials": self.n_trials,  # the study's target; interrupted trials ran again and do not count
            "states": dict(Counter(t.state.name for t in trials)),
            "interrupted": sum(1 for t in trials if t.user_attrs.get("interrupted")),
        }
        write_yaml(self.sweep_dir / "optimization_results.yaml", results)
        write_trials_csv(self.sweep_dir / "trials.csv", trials)


# --- the search space: Hydra's sweep syntax -> Optuna distributions --------------------------------------------------


# --- a job's outcome --------------------------------------------------------------------------------------------------


# --- the study --------------------------------------------------------------------------------------------------------


# --- files ------------------------------------------------------------------------------------------------------------
