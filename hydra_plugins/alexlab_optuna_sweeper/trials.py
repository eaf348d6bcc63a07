"""The trials of an Optuna sweep: how a job's run ended as a trial's state and value, the study's counts and best
trial, the files the sweep writes (optuna_study.yaml, trials.csv), and the multi-objective TPE sampler."""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from alexlab import record
from alexlab.errors import BadFile, BadValue, first_line
from alexlab.masking import mask
from alexlab.record import Record, Status
from hydra_plugins.alexlab_optuna_sweeper.config import Direction

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def trial_outcome(
    job_return: JobReturn | None, ended: Record | None, n_objectives: int = 1
) -> tuple[TrialState, list[float] | None, str | None]:
    """(state, values, error) of a trial. The values are what the task function returned: a number, or one per
    direction. A job that raised optuna.TrialPruned, or whose alexlab record says pruned: PRUNED. A job that raised,
    whose record says it did not finish, or whose return is not that many finite numbers: FAIL with the reason."""
    if job_return is not None and job_return.status == JobStatus.FAILED:
        raised = job_return._return_value
        if isinstance(raised, optuna.TrialPruned):
            return TrialState.PRUNED, None, None
        return TrialState.FAIL, None, (ended.error if ended else None) or first_line(raised, typed=True)
    if ended is not None and ended.status == Status.PRUNED:
        return TrialState.PRUNED, None, None
    if ended is not None and not ended.finished:
        return TrialState.FAIL, None, ended.error or f"the job ended with status {ended.status.value!r}"
    if job_return is None:  # the launch was cut short after the job finished: its record has the value
        if ended is None:
            return TrialState.FAIL, None, f"the job returned nothing and wrote no {record.RECORD}"
        returned: Any = ended.value()
    else:
        returned = job_return.return_value
    try:
        values = [float(returned)] if n_objectives == 1 else [float(v) for v in returned]
    except (TypeError, ValueError):
        want = "float-castable" if n_objectives == 1 else "a list or tuple of float-castable values"
        return TrialState.FAIL, None, f"Return value must be {want}. Got '{returned}'."
    if len(values) != n_objectives:
        return (
            TrialState.FAIL,
            None,
            (
                "The number of the values and the number of the objectives are mismatched. "
                f"Expect {n_objectives}, but actually {len(values)}."
            ),
        )
    if not all(math.isfinite(v) for v in values):
        name = (ended.objective if ended else None) or "the return value"
        return TrialState.FAIL, None, f"{name} is {returned}"
    return TrialState.COMPLETE, values, None


def read_record(run_dir: Path) -> Record | None:
    """The job's run record (alexlab.record); None when it has none or one that is not a record."""
    try:
        return record.read(run_dir)
    except BadFile:
        return None


def parse_directions(direction: Any) -> list[str]:
    """hydra.sweeper.direction: minimize or maximize (a string or the Direction enum), or a list of them."""
    given = list(direction) if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction) else [direction]
    names = [getattr(d, "name", d) for d in given]  # Direction.minimize, or "minimize"
    wrong = [str(name) for name in names if name not in Direction.__members__]
    if wrong or not names:
        raise BadValue(
            f"hydra.sweeper.direction={direction} is not a direction; choose minimize or maximize, or a list of them "
            "(one per value the task returns)"
        )
    return names


def count_done(study: optuna.Study) -> int:
    """Trials that count towards n_trials: ended ones, except those interrupted (they run again), and running ones
    (of other live workers of the same study)."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best trial of a single-objective study, None before one completed (or with several objectives)."""
    if len(study.directions) > 1 or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def tell(study: optuna.Study, trial: optuna.Trial | int, state: TrialState, values: list[float] | None = None) -> None:
    try:
        study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
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
            value = t.values[0] if t.values and len(t.values) == 1 else (" ".join(map(str, t.values or [])) or None)
            row = [t.number, t.state.name, value, t.datetime_start, t.datetime_complete, duration]
            row += [t.params.get(name) for name in param_names]
            row += [t.user_attrs.get("error"), t.user_attrs.get("interrupted", False)]
            writer.writerow(["" if v is None else v for v in row])
    os.replace(tmp, path)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def motpe_sampler(n_ehvi_candidates: int = 24, **kwargs: Any) -> optuna.samplers.TPESampler:
    """hydra/sweeper/sampler=motpe: Optuna's TPESampler, which took over MOTPESampler's multi-objective search."""
    return optuna.samplers.TPESampler(
        n_ei_candidates=n_ehvi_candidates, **{k: v for k, v in kwargs.items() if v is not None}
    )
