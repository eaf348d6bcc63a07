"""The Optuna sweeper: each trial is one Hydra job, asked from a study in a storage and told its outcome.

A trial's job gets the trial's params as overrides, plus `trial.storage=... trial.study_name=... trial.number=N`
(so that its pruning callback reports to this trial) and `hydra.sweep.subdir=N`: trial N runs in `<sweep dir>/N`.
The outcome is read from the job's `metrics.json` (status finished / failed / pruned); a failed trial is recorded
as FAIL with its error and the study goes on. The study lives in a storage, so re-running the same command resumes
it: trials left unfinished by an interrupted or killed sweep are failed as `interrupted`, asked again first, and
not counted towards `n_trials`.

Several workers (the same command started several times, on one machine or many) share a study: each new trial
is reserved under the storage's lock (alexlab.optuna_storage.study_lock) only while the study holds fewer than
`n_trials` trials that count, so that together they run exactly `n_trials`, each trial in one worker.
"""

from __future__ import annotations

import csv
import importlib
import logging
import math
import os
import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override, QuotedString, Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import OverrideParseException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from alexlab import record
from alexlab.errors import BadFile, BadValue, SweepFailed
from alexlab.masking import mask, mask_text
from alexlab.optuna_storage import PRUNER_ATTR, load_trial, open_storage, study_lock
from alexlab.record import Record, Status

log = logging.getLogger(__name__)

DEFAULT_STUDY_NAME = "alexlab"
# max_failure_rate is judged once this many trials of this run have ended
MIN_ENDED_FOR_FAILURE_RATE = 4
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
STARTED_ATTR = "sweeps_started"  # the study's count of the sweeps (workers) that opened it


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None,
        search_space: DictConfig | None = None,
    ) -> None:
        if search_space:
            raise BadValue(
                "hydra.sweeper.search_space is no longer read (Hydra 1.2 replaced it): write hydra.sweeper.params, "
                "e.g. params: {optimizer.lr: 'tag(log, interval(1e-4, 0.1))', data.batch_size: 'choice(64, 128)'}"
            )
        self.direction = parse_direction(direction)
        for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if value < 1:
                raise BadValue(f"hydra.sweeper.{key} must be at least 1, got {value}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise BadValue(f"hydra.sweeper.max_failure_rate must be between 0 and 1, got {max_failure_rate}")
        self.sampler_cfg, self.pruner_cfg = sampler, pruner
        self.storage_spec, self.study_name = storage, study_name or DEFAULT_STUDY_NAME
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = {str(k): str(v) for k, v in (params or {}).items()}
        self.custom_search_space = None
        if custom_search_space:
            module, _, name = custom_search_space.rpartition(".")
            try:
                self.custom_search_space = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as exc:
                raise BadValue(
                    f"hydra.sweeper.custom_search_space={custom_search_space}: cannot import it ({first_line(exc)})"
                ) from None
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.outcomes: Counter[str] = Counter()  # the states of the trials this run told

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
        sweeps = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        space, fixed = parse_search_space(sweeps)
        if not space and self.custom_search_space is None:
            raise BadValue(
                "the Optuna sweeper has nothing to search: give params as hydra.sweeper.params or on the command "
                "line, e.g. 'optimizer.lr=tag(log, interval(1e-4, 0.1))'"
            )
        study = self.open_study(space)
        self.write_study_file(space, sweeps, fixed)
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
            self.direction,
        )
        try:
            while trials := self.ask_batch(study, space):
                self.run_batch(study, trials, fixed)
                self.write_results(study)
        finally:
            self.write_results(study)
        best = best_trial(study)
        if best is not None:
            log.info("Best trial %d: value %.6g, params %s", best.number, best.value, format_params(best.params))

    def open_study(self, space: dict[str, BaseDistribution]) -> optuna.Study:
        """The study, created or loaded (resumed), with the configured sampler and pruner."""
        sampler_kwargs = self.sampler_arguments(space)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with study_lock(self.storage_spec, self.study_name):  # workers starting at once: one creates the tables
            storage = optuna.storages.get_storage(open_storage(self.storage_spec))
            study = optuna.create_study(
                study_name=self.study_name, storage=storage, direction=self.direction, load_if_exists=True
            )
            if study.direction.name.lower() != self.direction:
                raise BadValue(
                    f"the study '{self.study_name}' in {self.storage_spec} has direction "
                    f"{study.direction.name.lower()}, not hydra.sweeper.direction={self.direction}; "
                    "choose another study_name or storage for a new study"
                )
            started = study.user_attrs.get(STARTED_ATTR, 0)  # the sweeps (workers) of this study before this one
            study.set_user_attr(STARTED_ATTR, started + 1)
            # a resumed study, or another worker of it: seeded as the first sweep, the sampler would propose the same
            # params again; this sum grows with each sweep that opens the study
            seed_offset = len(study.trials) + started
        seed = self.sampler_cfg.get("seed")
        if seed is not None:
            sampler_kwargs["seed"] = seed + seed_offset
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=instantiate(self.sampler_cfg, **sampler_kwargs),
            pruner=instantiate(self.pruner_cfg),
        )
        # the jobs load their trial from the storage (load_trial) and ask this pruner whether to stop
        study.set_user_attr(PRUNER_ATTR, OmegaConf.to_container(self.pruner_cfg, resolve=True))
        # as Hydra's basic sweeper does; whole, for another worker's check_sweep_dir reads it
        multirun = self.sweep_dir / "multirun.yaml"
        temporary(multirun).write_text(mask_text(OmegaConf.to_yaml(self.config)))  # secrets: alexlab.masking
        os.replace(temporary(multirun), multirun)
        return study

    def sampler_arguments(self, space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """What the configured sampler needs besides its config: the grid for GridSampler (which caps n_trials)."""
        target = self.sampler_cfg._target_
        if target == "optuna.samplers.CmaEsSampler":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise BadValue("hydra/sweeper/sampler=cmaes needs the cmaes package: pip install cmaes") from None
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
            self.check_failure_rate()  # only while there is a trial to run
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
            trial.set_user_attr("error", first_line(exc))
            tell(study, trial, TrialState.FAIL)
            raise
        return trial

    def job_overrides(self, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        params = [f"{name}={self.override_value(name, value)}" for name, value in trial.params.items()]
        return [
            *fixed,
            *params,
            f"trial.storage={quote(self.storage_spec)}",
            f"trial.study_name={quote(self.study_name)}",
            f"trial.number={trial.number}",
            f"hydra.sweep.subdir={trial.number}",
        ]

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
        the trials whose run did not finish are failed as interrupted before the interrupt goes on."""
        overrides = [self.job_overrides(trial, fixed) for trial in trials]
        try:
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        except Exception as exc:  # e.g. a trial's overrides do not compose: those trials fail, the study goes on
            for trial in trials:
                self.conclude(study, trial, None, launch_error=f"the job did not run: {first_line(exc)}")
            return
        except BaseException as exc:
            for trial in trials:
                self.conclude(study, trial, None, interrupted=type(exc).__name__)
            raise
        for trial, job_return in zip(trials, returns, strict=True):
            self.conclude(study, trial, job_return)

    def conclude(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        job_return: JobReturn | None,
        launch_error: str | None = None,
        interrupted: str | None = None,
    ) -> None:
        """Tell the study the outcome of one trial and log it in one line."""
        run_dir = self.run_dir(trial.number, job_return)
        ended = read_record(run_dir)
        objective = objective_name(job_return, ended) or self.objective()
        state, value, error = trial_outcome(job_return, ended, objective)
        if job_return is None and (
            ended is None or ended.status not in (Status.FINISHED, Status.PRUNED, Status.FAILED)
        ):
            # the launch was cut short and this trial's job did not end (or did not start)
            state, value = TrialState.FAIL, None
            error = f"interrupted ({interrupted})" if interrupted else launch_error
            if interrupted:
                trial.set_user_attr("interrupted", True)
        if error:
            trial.set_user_attr("error", error)
        tell(study, trial, state, value)
        self.outcomes[state.name] += 1
        outcome = f"{objective}={value:.6g}" if state == TrialState.COMPLETE else error or (ended and ended.error)
        log.info("Trial %d %s  %s  %s  (%s)", trial.number, state.name, format_params(trial.params), outcome, run_dir)

    def run_dir(self, number: int, job_return: JobReturn | None) -> Path:
        output_dir = OmegaConf.select(job_return.hydra_cfg, "hydra.runtime.output_dir") if job_return else None
        return Path(output_dir) if output_dir else self.sweep_dir / str(number)

    def objective(self) -> str | None:
        return OmegaConf.select(self.config, "objective", default=None)

    def check_failure_rate(self) -> None:
        ended = sum(self.outcomes.values())
        failed = self.outcomes[TrialState.FAIL.name]
        if ended >= MIN_ENDED_FOR_FAILURE_RATE and failed / ended > self.max_failure_rate:
            raise SweepFailed(
                f"the Optuna study stopped: {failed} of the {ended} trials it ran failed, more than "
                f"max_failure_rate={self.max_failure_rate:g}; see {self.sweep_dir / 'trials.csv'} and the "
                "failed trials' metrics.json"
            )

    def write_study_file(self, space: dict[str, BaseDistribution], sweeps: list[str], fixed: list[str]) -> None:
        given = dict(override.partition("=")[::2] for override in sweeps)
        study_file = {
            "study_name": self.study_name,
            "storage": self.storage_spec,
            "direction": self.direction,
            "objective": self.objective(),
            "n_trials": self.n_trials,
            "params": {name: given.get(name) for name in space},
            "fixed": fixed,
            "sampler": self.sampler_cfg._target_,
            "pruner": self.pruner_cfg._target_,
        }
        write_yaml(self.sweep_dir / "optuna_study.yaml", study_file)

    def write_results(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        best = best_trial(study)
        write_yaml(
            self.sweep_dir / "optimization_results.yaml",
            {
                "name": "optuna",
                "best_params": dict(best.params) if best else None,
                "best_value": best.value if best else None,
                "best_trial": best.number if best else None,
                "study_name": self.study_name,
                "storage": self.storage_spec,
                "n_trials": self.n_trials,  # the study's target; interrupted trials ran again and do not count
                "states": dict(Counter(t.state.name for t in trials)),
                "interrupted": sum(1 for t in trials if t.user_attrs.get("interrupted")),
            },
        )
        write_trials_csv(self.sweep_dir / "trials.csv", trials)


# --- the search space: Hydra's sweep syntax -> Optuna distributions --------------------------------------------------


def parse_search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Sweep overrides become Optuna distributions, keyed by the override's key; plain overrides stay as they are
    and go to every trial. A later override of the same key replaces an earlier one."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()][1:2] or ["syntax error"]
            raise BadValue(f"cannot parse the sweep param '{text}': {reason[0].strip()}") from None
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = to_distribution(override, text)
        else:
            fixed[key] = text
    return space, list(fixed.values())


def to_distribution(override: Override, text: str) -> BaseDistribution:
    """choice(...) and a,b,c: categorical; range(a, b[, step]): ints (or floats) from a to b excluded, as Hydra's
    basic sweeper runs them; interval(a, b): floats (Hydra reads its ends as floats); tag(log, interval(...)): the
    same on a log scale; shuffle(...): categorical."""
    value = override.value()
    if isinstance(value, Glob):
        raise BadValue(f"sweep param '{text}': glob() is not supported by the Optuna sweeper; list the options")
    try:
        if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
            return CategoricalDistribution([choice_value(x) for x in override.sweep_iterator()])
        if override.is_range_sweep():
            values = list(override.sweep_iterator())
            if not values:
                raise BadValue("the range is empty")
            low, high, step = min(values), max(values), abs(value.step)
            if all(isinstance(x, int) for x in (value.start, value.stop, value.step)):
                return IntDistribution(low, high, step=step)
            return FloatDistribution(low, high, step=step)
        assert override.is_interval_sweep()
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    except ValueError as exc:
        raise BadValue(f"sweep param '{text}': {str(exc).strip()}") from None


def choice_value(element: Any) -> Any:
    """A categorical choice as Optuna stores it: numbers and bools as they are, anything else in override syntax
    (so that `name=<choice>` gives the job exactly that value: '5' stays the string 5, [1,2] a list)."""
    if isinstance(element, QuotedString):
        element = element.text
    if isinstance(element, (bool, int, float)):
        return element
    if isinstance(element, str):
        return element if is_plain_string(element) else quote(element)
    return Transformer.str(element)


def is_plain_string(text: str) -> bool:
    """A string that Hydra reads back as the same string without quotes (sgd, val/top1_err, flip_crop)."""
    keywords = ("true", "false", "null", "nan", "inf")
    return bool(re.fullmatch(r"[A-Za-z_][\w\-./]*", text)) and text.lower() not in keywords


def quote(text: str) -> str:
    """`text` as a Hydra quoted string: quotes escaped, and the backslashes before a quote or at the end doubled."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{escaped}'"


def override_value(value: Any) -> str:
    """A trial's param value in override syntax (strings are already in it: see choice_value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Ask the trial for a value through the public suggest API (which also serves enqueued params)."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    low, high, step, log_scale = distribution.low, distribution.high, distribution.step, distribution.log
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, low, high, step=step, log=log_scale)
    return trial.suggest_float(name, low, high, step=step, log=log_scale)


def grid_of(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The GridSampler's grid: the choices, or every value of a range."""
    grid = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[name] = list(distribution.choices)
        elif isinstance(distribution, (IntDistribution, FloatDistribution)) and distribution.step is not None:
            n = round((distribution.high - distribution.low) / distribution.step) + 1
            grid[name] = [distribution.low + i * distribution.step for i in range(n)]
        else:
            raise BadValue(
                f"hydra/sweeper/sampler=grid needs discrete params (choice, a,b,c or range); '{name}' is an interval"
            )
    return grid


# --- a job's outcome --------------------------------------------------------------------------------------------------


def trial_outcome(
    job_return: JobReturn | None, ended: Record | None, objective: str | None
) -> tuple[TrialState, float | None, str | None]:
    """(state, value, error) of a trial from its job's return and its run record. Finished with a finite objective:
    COMPLETE; pruned: PRUNED; anything else (failed, crashed, no record, NaN or inf): FAIL with the reason."""
    if job_return is not None and job_return.status == JobStatus.FAILED:
        error = (ended.error if ended else None) or first_line(job_return._return_value)
        return TrialState.FAIL, None, error
    if ended is None:
        return TrialState.FAIL, None, "the job wrote no metrics.json"
    if ended.status == Status.PRUNED:
        return TrialState.PRUNED, None, None
    if not ended.finished:
        return TrialState.FAIL, None, ended.error or f"the job ended with status {ended.status.value!r}"
    value = ended.value(objective)
    if math.isnan(value) and job_return is not None and job_return.status == JobStatus.COMPLETED:
        value = job_return.return_value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return TrialState.FAIL, None, f"no value of the objective {objective} (got {value!r})"
    if not math.isfinite(value):
        return TrialState.FAIL, None, f"the objective {objective} is {value}"
    return TrialState.COMPLETE, value, None


def read_record(run_dir: Path) -> Record | None:
    """The job's run record (alexlab.record); None when it has none or one that is not a record."""
    try:
        return record.read(run_dir)
    except BadFile:
        return None


def objective_name(job_return: JobReturn | None, ended: Record | None) -> str | None:
    if job_return is not None and job_return.cfg is not None:
        name = OmegaConf.select(job_return.cfg, "objective", default=None)
        if name:
            return name
    return ended.objective if ended else None


# --- the study --------------------------------------------------------------------------------------------------------


def parse_direction(direction: Any) -> str:
    if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction):
        raise BadValue(
            f"hydra.sweeper.direction={list(direction)}: multi-objective studies are not supported; "
            "give one direction: minimize or maximize"
        )
    name = getattr(direction, "name", direction)  # the official plugin's Direction enum, or a string
    if name not in ("minimize", "maximize"):
        raise BadValue(f"hydra.sweeper.direction={name} is not a direction; choose one of: minimize, maximize")
    return name


def count_done(study: optuna.Study) -> int:
    """Trials that count towards n_trials: ended ones, except those interrupted (they run again), and running ones
    (of other live workers of the same study)."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def tell(study: optuna.Study, trial: optuna.Trial | int, state: TrialState, value: float | None = None) -> None:
    try:
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except RuntimeError as exc:
        # GridSampler asks the study to stop once the grid is covered, which only works inside study.optimize;
        # the trial is already stored, and our loop ends by itself
        if "Study.stop" not in str(exc):
            raise


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- files ------------------------------------------------------------------------------------------------------------


def temporary(path: Path) -> Path:
    """Where this process writes `path` before moving it in place (other workers write the same files)."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def write_yaml(path: Path, data: dict) -> None:
    temporary(path).write_text(yaml.safe_dump(mask(data), sort_keys=False))  # secrets: alexlab.masking
    os.replace(temporary(path), path)


def write_trials_csv(path: Path, trials: list[FrozenTrial]) -> None:
    """One row per trial, with the columns of study.trials_dataframe() that matter (without needing pandas);
    duration in seconds."""
    param_names = sorted({name for t in trials for name in t.params})
    header = ["number", "state", "value", "datetime_start", "datetime_complete", "duration"]
    header += [f"params_{name}" for name in param_names] + ["user_attrs_error", "user_attrs_interrupted"]
    tmp = temporary(path)
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for t in trials:
            duration = t.duration.total_seconds() if t.duration is not None else None
            row = [t.number, t.state.name, t.value, t.datetime_start, t.datetime_complete, duration]
            row += [t.params.get(name) for name in param_names]
            row += [t.user_attrs.get("error"), t.user_attrs.get("interrupted", False)]
            writer.writerow(["" if v is None else v for v in row])
    os.replace(tmp, path)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
