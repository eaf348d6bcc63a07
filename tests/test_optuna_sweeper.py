"""The Optuna sweeper (hydra_plugins/alexlab_optuna_sweeper): the search-space syntax, a job's outcome as a trial
state, and whole sweeps through the real command: resumed, with a stale trial of a killed sweep, pruned, crashing,
and run by two workers at once on a journal file and on a PostgreSQL server of the test's own."""

import csv
import json
import math
import multiprocessing
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from helpers.commands import FEW_BATCHES, run_dirs
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from alexlab.optuna_storage import open_storage
from alexlab.record import Record
from hydra_plugins.alexlab_optuna_sweeper.config import Direction
from hydra_plugins.alexlab_optuna_sweeper.optuna_sweeper import (
    OptunaSweeper,
    count_done,
    grid_of,
    override_value,
    parse_directions,
    parse_search_space,
    quote,
    trial_outcome,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A trial in seconds: the smoke experiment (a few batches of synthetic shapes), one epoch, no test, no logger.
FAST = ("experiment=smoke", "logger=none", "test_after_fit=false")
ONE_EPOCH = "trainer.max_epochs=1"
LR = "optimizer.lr=tag(log, interval(1e-4, 1e-1))"
LR_DISTRIBUTION = FloatDistribution(1e-4, 1e-1, log=True)


# --- the search space -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("lr=interval(0.001, 0.1)", FloatDistribution(0.001, 0.1)),
        ("lr=tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 0.1, log=True)),
        # Hydra reads interval()'s ends as floats (an interval is continuous); int() makes it integers
        ("x=interval(1, 5)", FloatDistribution(1.0, 5.0)),
        ("x=tag(log, interval(1, 1024))", FloatDistribution(1.0, 1024.0, log=True)),
        ("x=int(interval(1, 5))", IntDistribution(1, 5)),
        ("x=tag(log, int(interval(1, 1024)))", IntDistribution(1, 1024, log=True)),
        ("bs=choice(32, 64, 128)", CategoricalDistribution([32, 64, 128])),
        ("opt=sgd,adam,adamw", CategoricalDistribution(["sgd", "adam", "adamw"])),
        # as the official plugin samples a range: from its start to its stop *included*, by its step
        ("n=range(1, 5)", IntDistribution(1, 5)),
        ("n=range(0, 9, 3)", IntDistribution(0, 9, step=3)),
        ("n=range(5, 1, -2)", IntDistribution(1, 5, step=2)),
        ("x=range(0.5, 2.0, 0.5)", FloatDistribution(0.5, 2.0, step=0.5)),
        ("flag=true,false", CategoricalDistribution([True, False])),
    ],
)
def test_each_sweep_syntax_becomes_its_distribution(override, expected):
    space, fixed = parse_search_space([override])
    assert fixed == {}
    assert space == {override.split("=")[0]: expected}
    assert type(space[override.split("=")[0]]) is type(expected)


def test_shuffled_range_is_categorical():
    space, _ = parse_search_space(["n=shuffle(range(1, 4))"])
    assert isinstance(space["n"], CategoricalDistribution)
    assert sorted(space["n"].choices) == [1, 2, 3]


def test_plain_overrides_pass_through_and_later_ones_win():
    params = ["optimizer.lr=interval(0.001, 0.1)", "data.batch_size=choice(32, 64)", "seed=1"]
    command_line = ["optimizer.lr=0.01", "experiment=smoke", "data.batch_size=choice(16, 32)"]
    space, fixed = parse_search_space(params + command_line)
    assert space == {"data.batch_size": CategoricalDistribution([16, 32])}
    assert list(fixed.values()) == ["seed=1", "optimizer.lr=0.01", "experiment=smoke"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=interval(0.1", "optimizer.lr=interval(0.1"),
        ("optimizer.lr=tag(log, interval(0, 1))", "low > 0"),
        ("optimizer.lr=interval(0.1, 0.01)", "low <= high"),
        ("depth=range(5, 3)", "the range is empty"),
        ("depth=glob(*)", "glob() is not supported"),
    ],
)
def test_bad_params_fail_in_one_line_naming_the_param(override, message):
    with pytest.raises(ValueError, match="sweep param") as info:
        parse_search_space([override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def override_parses_to(name: str, value) -> object:
    (override,) = OverridesParser.create().parse_overrides([f"{name}={override_value(value)}"])
    assert not override.is_sweep_override()
    return override.value()


@pytest.mark.parametrize(
    ("sweep", "job_values"),
    [
        # numbers stay numbers; strings that look like numbers stay strings (a config group's option '5')
        ("depth='5','3'", ["5", "3"]),
        ("depth=choice('5', '3')", ["5", "3"]),
        ("name=choice('a b', plain, 'it\\'s')", ["a b", "plain", "it's"]),
        ("x=choice(1e-9, 0.5, 3)", [1e-9, 0.5, 3]),
        ("x=choice([1,2], true)", [[1, 2], True]),
        ("x=choice('null', 'inf', sgd)", ["null", "inf", "sgd"]),
    ],
)
def test_a_trial_value_reaches_the_job_as_the_value_chosen(sweep, job_values):
    space, _ = parse_search_space([sweep])
    ((name, distribution),) = space.items()
    got = [override_parses_to(name, choice) for choice in distribution.choices]
    assert got == job_values
    assert [type(v) for v in got] == [type(v) for v in job_values]


@pytest.mark.parametrize("value", [1e-05, 0.1, 123456789.0, -2.5e-12, 7, 0])
def test_suggested_numbers_round_trip(value):
    got = override_parses_to("x", value)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "text", ["/tmp/a b/optuna.journal", "postgresql://u:p@h:5432/db?x=1&y=2", "it's", "C:\\dir\\", "a\\'b", "5", ""]
)
def test_quote_round_trips_through_hydras_grammar(text):
    (override,) = OverridesParser.create().parse_overrides([f"trial.storage={quote(text)}"])
    assert override.value() == text


def test_grid_of_lists_every_point():
    # the official plugin's grid: a range's values below its stop (as Hydra's basic sweeper runs them)
    space, _ = parse_search_space(["a=range(1, 4)", "b=x,y"])
    assert grid_of(space) == {"a": [1, 2, 3], "b": ["x", "y"]}
    with pytest.raises(ValueError, match="grid needs discrete params"):
        grid_of(parse_search_space(["c=interval(0.1, 1.0)"])[0])


def test_direction_is_one_or_a_list_of_two_names():
    assert parse_directions("maximize") == ["maximize"]
    assert parse_directions(Direction.minimize) == ["minimize"]
    assert parse_directions(OmegaConf.create(["minimize", "maximize"])) == ["minimize", "maximize"]
    with pytest.raises(ValueError, match="choose minimize or maximize"):
        parse_directions("up")


def sweeper(**kwargs) -> OptunaSweeper:
    config = {
        "sampler": OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0}),
        "pruner": OmegaConf.create({"_target_": "optuna.pruners.NopPruner"}),
        "direction": "minimize",
        "storage": None,
        "study_name": None,
        "n_trials": 4,
        "n_jobs": 1,
        "max_failure_rate": 1.0,
        "params": None,
        "search_space": None,
        "custom_search_space": None,
    }
    return OptunaSweeper(**(config | kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials must be at least 1"),
        ({"n_jobs": 0}, "n_jobs must be at least 1"),
        ({"max_failure_rate": 1.5}, "max_failure_rate must be between 0 and 1"),
        ({"custom_search_space": "nosuch.module.fn"}, "custom_search_space=nosuch.module.fn: cannot import"),
    ],
)
def test_bad_sweeper_config_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweeper(**kwargs)


def test_a_study_keeps_its_direction(tmp_path):
    optuna.create_study(study_name="alexlab", storage=open_storage(str(tmp_path / "optuna.journal")))
    maximizing = sweeper(direction="maximize")
    maximizing.sweep_dir, maximizing.storage_spec = tmp_path, str(tmp_path / "optuna.journal")
    maximizing.config = OmegaConf.create({"objective": "val/top1_err"})
    with pytest.raises(ValueError, match="has direction minimize, not hydra.sweeper.direction=maximize"):
        maximizing.open_study(parse_search_space([LR])[0])


def test_hydra_1_1_search_space_is_read_with_the_official_warning():
    old = sweeper(search_space=OmegaConf.create({"x": {"type": "float", "low": -5.5, "high": 5.5, "step": 0.5}}))
    with pytest.warns(UserWarning, match="`hydra.sweeper.search_space` is deprecated"):
        old._process_searchspace_config()
    assert old.search_space_distributions == {"x": FloatDistribution(-5.5, 5.5, step=0.5)}
    both = sweeper(search_space=OmegaConf.create({"x": {"type": "int", "low": 1, "high": 3}}), params={"y": "1,2"})
    with pytest.warns(UserWarning, match="Both hydra.sweeper.params and hydra.sweeper.search_space"):
        both._process_searchspace_config()
    assert both.search_space_distributions == {}  # params win


def test_the_official_samplers_keys_are_taken(tmp_path):
    """motpe (Optuna 4 folded it into TPESampler), nsgaii's constraints_func as "module.function", and cmaes'
    independent_sampler as a sampler config."""
    from hydra.utils import instantiate

    from hydra_plugins.alexlab_optuna_sweeper.config import CmaEsSamplerConfig, MOTPESamplerConfig

    motpe = instantiate(OmegaConf.structured(MOTPESamplerConfig(n_ehvi_candidates=7, seed=1)))
    assert isinstance(motpe, optuna.samplers.TPESampler) and motpe._n_ei_candidates == 7
    nsgaii = sweeper(
        sampler=OmegaConf.create({"_target_": "optuna.samplers.NSGAIISampler", "constraints_func": "math.fabs"})
    )
    assert nsgaii.sampler_arguments({}) == {"constraints_func": math.fabs}
    with pytest.raises(ValueError, match="constraints_func=nosuch.fn: cannot import it"):
        sweeper(sampler=OmegaConf.create({"_target_": "x", "constraints_func": "nosuch.fn"})).sampler_arguments({})
    cmaes = OmegaConf.structured(CmaEsSamplerConfig(independent_sampler={"_target_": "optuna.samplers.RandomSampler"}))
    assert cmaes.independent_sampler._target_ == "optuna.samplers.RandomSampler"  # instantiated with the sampler


def test_a_study_with_two_directions_writes_its_pareto_front(tmp_path):
    pareto = sweeper(direction=["minimize", "maximize"])
    pareto.sweep_dir, pareto.storage_spec = tmp_path, str(tmp_path / "optuna.journal")
    pareto.config = OmegaConf.create({})
    study = pareto.open_study({"x": FloatDistribution(0, 1)})
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    for values in ([1.0, 1.0], [2.0, 2.0], [3.0, 0.5]):  # the third is dominated by the second
        study.tell(study.ask({"x": FloatDistribution(0, 1)}), values)
    pareto.write_results(study)
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna" and "best_value" not in results
    assert sorted(s["values"] for s in results["solutions"]) == [[1.0, 1.0], [2.0, 2.0]]


def test_a_job_finds_its_trial_in_its_environment(tmp_path, monkeypatch):
    """What the sweeper puts in hydra.job.env_set is what alexlab's training reads (current_trial), in whichever
    process Hydra's launcher runs the job; outside a trial there is none."""
    from alexlab.optuna_storage import TRIAL_ENV, current_trial

    spec = str(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(spec))
    study.ask()
    asked = study.ask()
    monkeypatch.delenv(TRIAL_ENV["trial"], raising=False)
    assert current_trial() is None
    job = sweeper(study_name="s")
    job.storage_spec = spec
    job.hydra_context = None
    overrides = job.job_overrides(asked, ["seed=1"])
    assert overrides[0] == "seed=1" and not [o for o in overrides if o.startswith("trial.")]
    env = dict(o.removeprefix("++hydra.job.env_set.").split("=", 1) for o in overrides if "env_set" in o)
    for name, value in env.items():
        monkeypatch.setenv(name, value.strip("'"))
    trial = current_trial()
    assert trial is not None and trial.number == asked.number == 1 and trial.study.study_name == "s"


# --- a job's outcome --------------------------------------------------------------------------------------------------


def completed(value) -> JobReturn:
    return JobReturn(status=JobStatus.COMPLETED, _return_value=value)


OBJ = "val/top1_err"


def as_record(metrics: dict | None) -> Record | None:
    """A job's metrics.json as the sweeper reads it (alexlab.record)."""
    return None if metrics is None else Record.from_dict(metrics)


@pytest.mark.parametrize(
    ("job_return", "metrics", "expected"),
    [
        # the value is what the task returned (alexlab's task returns its record's objective)
        (
            completed(0.25),
            {"status": "finished", "best": {OBJ: 0.25}, "final": {OBJ: 0.3}},
            (TrialState.COMPLETE, [0.25]),
        ),
        (completed(0.4), None, (TrialState.COMPLETE, [0.4])),  # any Hydra app: no record
        (completed("0.5"), None, (TrialState.COMPLETE, [0.5])),  # float-castable, as the official plugin takes it
        (None, {"status": "finished", "best": {OBJ: 0.2}}, (TrialState.COMPLETE, [0.2])),  # launch cut short after
        (completed(math.nan), {"status": "pruned", "error": "TrialPruned: epoch 1"}, (TrialState.PRUNED, None)),
        (JobReturn(status=JobStatus.FAILED, _return_value=optuna.TrialPruned("x")), None, (TrialState.PRUNED, None)),
    ],
)
def test_finished_and_pruned_jobs(job_return, metrics, expected):
    state, values, error = trial_outcome(job_return, as_record(metrics))
    assert (state, values) == expected
    assert error is None


def test_a_multi_objective_trial_takes_one_value_per_direction():
    assert trial_outcome(completed((1.0, 2)), None, 2) == (TrialState.COMPLETE, [1.0, 2.0], None)
    state, _, error = trial_outcome(completed((1.0, 2.0, 3.0)), None, 2)
    assert state == TrialState.FAIL and "Expect 2, but actually 3" in error
    state, _, error = trial_outcome(completed(1.0), None, 2)
    assert state == TrialState.FAIL and "list or tuple of float-castable values" in error


@pytest.mark.parametrize(
    ("job_return", "metrics", "reason"),
    [
        (completed(math.nan), {"status": "failed", "error": "ValueError: batch_size must be >= 1"}, "batch_size"),
        (completed(0.3), {"status": "running"}, "status 'running'"),
        (completed(math.nan), {"status": "finished", "best": {OBJ: math.nan}}, "is nan"),
        (completed(math.inf), None, "is inf"),
        (completed(None), None, "Return value must be float-castable. Got 'None'"),
        (completed("abc"), None, "Got 'abc'"),
        (JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("boom\nmore")), None, "RuntimeError: boom"),
    ],
)
def test_every_other_outcome_is_a_failure_with_its_reason(job_return, metrics, reason):
    state, value, error = trial_outcome(job_return, as_record(metrics))
    assert state == TrialState.FAIL and value is None
    assert reason in error and "\n" not in error


def test_what_counts_towards_n_trials():
    study = optuna.create_study()
    for state, interrupted in [
        (TrialState.COMPLETE, False),
        (TrialState.PRUNED, False),
        (TrialState.FAIL, False),
        (TrialState.FAIL, True),  # runs again: not counted
    ]:
        trial = study.ask()
        if interrupted:
            trial.set_user_attr("interrupted", True)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    study.ask()  # under way in another worker: counted, it will end
    study.enqueue_trial({})  # waiting to be asked: not counted
    assert count_done(study) == 4


def test_results_without_a_completed_trial(tmp_path):
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("error", "ValueError: bad")
    study.tell(trial, state=TrialState.FAIL)
    empty = sweeper()
    empty.sweep_dir, empty.storage_spec = tmp_path, "memory"
    empty.write_results(study)
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_params"] is None and results["best_value"] is None and results["best_trial"] is None
    assert results["states"] == {"FAIL": 1}
    (row,) = read_csv(tmp_path / "trials.csv")
    assert (row["state"], row["value"], row["user_attrs_error"]) == ("FAIL", "", "ValueError: bad")


# --- whole sweeps through the command ---------------------------------------------------------------------------------


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_study(sweep_dir) -> optuna.Study:
    return optuna.load_study(study_name="alexlab", storage=open_storage(str(sweep_dir / "optuna.journal")))


def job_env(job_dir: Path) -> dict:
    """The environment Hydra set for a job (hydra.job.env_set in its .hydra/hydra.yaml): the trial's handle."""
    return yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["env_set"]


def run_metrics(sweep_dir, number) -> dict:
    return json.loads((sweep_dir / str(number) / "metrics.json").read_text())


def test_a_resumed_sweep_ends_with_all_its_trials_none_repeated(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    args = ("-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=3")
    args += (*FAST, ONE_EPOCH, *FEW_BATCHES, LR)
    first = alexlab(*args, f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2")
    assert "Trial 1 COMPLETE" in first.stderr + first.stdout
    before = {n: (sweep / str(n) / "metrics.json").read_text() for n in (0, 1)}
    assert [t.state for t in load_study(sweep).trials] == [TrialState.COMPLETE] * 2

    alexlab(*args, f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=4")

    trials = load_study(sweep).trials
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(4)]
    assert len({t.params["optimizer.lr"] for t in trials}) == 4  # the resumed sampler did not repeat the first two
    for n in (0, 1):  # the first run's trials were neither run again nor rewritten
        assert (sweep / str(n) / "metrics.json").read_text() == before[n]
    for trial in trials:  # trial N ran in <sweep>/N with its params and its trial number
        metrics = run_metrics(sweep, trial.number)
        assert metrics["status"] == "finished"
        assert metrics["best"]["val/top1_err"] == pytest.approx(trial.value)
        assert f"optimizer.lr={trial.params['optimizer.lr']!r}" in metrics["overrides"]
        assert not [o for o in metrics["overrides"] if o.startswith("trial.")]  # no config node for the handle
        assert job_env(sweep / str(trial.number))["ALEXLAB_OPTUNA_TRIAL"] == str(trial.number)

    study_file = yaml.safe_load((sweep / "optuna_study.yaml").read_text())
    assert study_file["storage"] == str(sweep / "optuna.journal")
    assert (study_file["study_name"], study_file["direction"], study_file["objective"]) == (
        "alexlab",
        "minimize",
        "val/top1_err",
    )
    assert (study_file["n_trials"], study_file["params"]) == (4, {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))"})
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = min(trials, key=lambda t: t.value)
    assert results["states"] == {"COMPLETE": 4}
    assert (results["best_value"], results["best_params"]) == (best.value, best.params)
    rows = read_csv(sweep / "trials.csv")
    assert [(row["number"], row["state"]) for row in rows] == [(str(n), "COMPLETE") for n in range(4)]
    assert [float(row["params_optimizer.lr"]) for row in rows] == [t.params["optimizer.lr"] for t in trials]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_trial_left_running_by_a_killed_sweep_runs_again(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(study_name="alexlab", storage=open_storage(str(sweep / "optuna.journal")))
    study.enqueue_trial({"optimizer.lr": 0.0123})
    stale = study.ask({"optimizer.lr": LR_DISTRIBUTION})  # as the sweeper asks it, then the sweep is SIGKILLed
    stale.set_user_attr("worker", f"{socket.gethostname()}:{dead_pid()}")
    live = study.ask({"optimizer.lr": LR_DISTRIBUTION})  # a trial of another sweep, still running on this host
    live.set_user_attr("worker", f"{socket.gethostname()}:1")

    args = ("-m", "hydra/sweeper=optuna", *FAST, ONE_EPOCH, *FEW_BATCHES, LR, f"hydra.sweep.dir={sweep}")
    args += ("hydra.sweeper.n_trials=3",)
    result = alexlab(*args)
    assert "Trial 0 was left running by a sweep that is gone" in result.stderr + result.stdout

    trials = load_study(sweep).trials
    states = [TrialState.FAIL, TrialState.RUNNING, TrialState.COMPLETE, TrialState.COMPLETE]
    assert [t.state for t in trials] == states  # the live sweep's trial was left alone (and counted)
    assert trials[0].user_attrs["interrupted"] is True
    assert "is gone" in trials[0].user_attrs["error"]
    assert trials[2].params == {"optimizer.lr": 0.0123}  # the stale trial's params ran first, once
    assert trials[2].user_attrs["requeued_from"] == 0
    assert trials[3].params != trials[2].params
    assert count_done(load_study(sweep)) == 3
    assert not (sweep / "0").exists() and not (sweep / "1").exists()
    assert run_metrics(sweep, 2)["status"] == run_metrics(sweep, 3)["status"] == "finished"
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"FAIL": 1, "RUNNING": 1, "COMPLETE": 2}

    alexlab(*args)  # run again: the study is complete, the interrupted trial is not queued a second time
    assert [t.state for t in load_study(sweep).trials] == states


def test_the_pruner_stops_a_trial_that_is_worse_than_the_median(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(study_name="alexlab", storage=open_storage(str(sweep / "optuna.journal")))
    # a finished trial with a perfect validation error at every epoch: any real run is worse than it
    study.add_trial(
        optuna.trial.create_trial(
            params={"optimizer.lr": 0.01},
            distributions={"optimizer.lr": LR_DISTRIBUTION},
            value=0.0,
            intermediate_values={0: 0.0, 1: 0.0},
        )
    )
    # median pruning from the 2nd finished trial on: the first real trial (1) runs to the end, the second (2) is worse
    # than the median of the perfect one and trial 1 after epoch 0, and stops there
    alexlab(
        "-m",
        "hydra/sweeper=optuna",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",  # trial 1 told before trial 2 runs (a batch is told at its end)
        *FAST,
        "trainer.max_epochs=2",  # (one epoch each in the other tests)
        LR,
        f"hydra.sweep.dir={sweep}",
    )
    trials = load_study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert sorted(trials[1].intermediate_values) == [0, 1]
    assert sorted(trials[2].intermediate_values) == [0]  # stopped after its first epoch
    assert trials[2].intermediate_values[0] > 0.0
    pruned = run_metrics(sweep, 2)
    assert pruned["status"] == "pruned" and "TrialPruned" in pruned["error"]
    assert run_metrics(sweep, 1)["status"] == "finished"
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"COMPLETE": 2, "PRUNED": 1}


def test_a_crashing_trial_is_recorded_and_the_study_finishes(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    # batch_size -1 composes but fails inside the job (the data loader refuses it)
    alexlab(
        "-m",
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=grid",
        *FAST,
        ONE_EPOCH,
        *FEW_BATCHES,
        "data.batch_size=choice(16,-1)",
        "depth=choice(4)",  # a number for a config group reaches the job as the option '4'
        "hydra.sweeper.max_failure_rate=0.5",  # the official default 0.0 stops at the first failed trial
        f"hydra.sweep.dir={sweep}",
    )
    trials = {t.params["data.batch_size"]: t for t in load_study(sweep).trials}
    assert sorted(trials) == [-1, 16]  # the grid of 2 capped n_trials (default 20) at 2
    assert run_metrics(sweep, trials[16].number)["switches"]["depth"] == "4"
    assert trials[16].state == TrialState.COMPLETE
    assert trials[-1].state == TrialState.FAIL
    assert "batch_size" in trials[-1].user_attrs["error"]
    assert run_metrics(sweep, trials[-1].number)["status"] == "failed"

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["states"] == {"COMPLETE": 1, "FAIL": 1}
    assert (results["best_trial"], results["best_params"]) == (trials[16].number, {"data.batch_size": 16, "depth": 4})
    rows = {row["params_data.batch_size"]: row for row in read_csv(sweep / "trials.csv")}
    assert rows["-1"]["state"] == "FAIL" and "batch_size" in rows["-1"]["user_attrs_error"]
    assert rows["16"]["state"] == "COMPLETE" and float(rows["16"]["value"]) == trials[16].value
    study_file = yaml.safe_load((sweep / "optuna_study.yaml").read_text())
    assert study_file["params"] == {"data.batch_size": "choice(16,-1)", "depth": "choice(4)"}


def test_too_many_failed_trials_stop_the_study_with_one_line(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    result = alexlab(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.max_failure_rate=0.5",
        "hydra.sweeper.n_trials=10",
        *FAST,
        ONE_EPOCH,
        "data.batch_size=choice(-1,-2)",
        f"hydra.sweep.dir={sweep}",
        expect_ok=False,
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("alexlab: error:")]
    # as the official plugin judges it: per batch (n_jobs=2 trials), with the failed job's error in the line
    assert "the Optuna study stopped: 2 of the 2 trials of a batch failed, more than max_failure_rate=0.5" in line
    assert "batch_size" in line
    assert [t.state for t in load_study(sweep).trials] == [TrialState.FAIL] * 2
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["states"] == {"FAIL": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hydra.sweeper.n_trials=0",), "hydra.sweeper.n_trials must be at least 1"),
        (("optimizer.lr=interval(0.1, 0.01)",), "sweep param 'optimizer.lr=interval(0.1, 0.01)'"),
        (("hydra/sweeper/pruner=nope",), "choose one of: hyperband, median, none"),
    ],
)
def test_bad_input_ends_in_one_line(alexlab, tmp_path, args, message):
    sweep = tmp_path / "sweep"
    result = alexlab("-m", "hydra/sweeper=optuna", *FAST, LR, *args, f"hydra.sweep.dir={sweep}", expect_ok=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("alexlab: error:")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (sweep / "optuna.journal").exists()  # nothing was created


# --- a study shared by several workers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_server():
    """A PostgreSQL server of the tests' own (Debian's postgresql package) on a free loopback port, trust auth, its
    socket and data in a temporary directory; stopped and removed at the end. Yields the URL without a database."""
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: (len(p.parts[-3]), p.parts[-3]))
    if not initdbs:
        pytest.skip("no PostgreSQL server: apt-get install postgresql (/usr/lib/postgresql/*/bin/initdb)")
    pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (in alexlab's dev extra)")
    bin_dir, as_owner = initdbs[-1].parent, []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the PostgreSQL server")
        as_owner = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="alexlab-postgres-"))  # not under pytest's tmp dir, which only root may enter
    if as_owner:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def pg(program: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_owner, str(bin_dir / program), *args], capture_output=True, text=True, timeout=120)

    def check(result: subprocess.CompletedProcess) -> None:
        assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout}\n{result.stderr}"

    data = str(root / "data")
    try:
        check(pg("initdb", "-D", data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"))
        server_options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"  # -F: no fsync
        check(pg("pg_ctl", "-D", data, "-l", str(root / "server.log"), "-o", server_options, "-w", "-t", "60", "start"))
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")  # (if it started)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty database on the tests' PostgreSQL server."""
    name = f"study_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{postgres_server}/{name}"


def storage_spec(kind: str, tmp_path: Path, request) -> str:
    if kind == "journal":
        return str(tmp_path / "optuna.journal")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("postgres_url")


def reserve_until_full(spec: str, n_trials: int, start) -> None:
    """A worker (a process of its own) reserving trials as fast as it can, from the same instant as the others."""
    worker = sweeper(n_trials=n_trials)
    worker.storage_spec, worker.study_name = spec, "alexlab"
    study = optuna.load_study(study_name="alexlab", storage=open_storage(spec))
    start.wait()
    while worker.reserve(study) is not None:
        pass


@pytest.mark.parametrize("kind", ["journal", "sqlite", "postgresql"])
def test_workers_reserving_at_the_same_instant_start_exactly_n_trials(tmp_path, request, kind):
    spec, n_workers, n_trials = storage_spec(kind, tmp_path, request), 4, 12
    optuna.create_study(study_name="alexlab", storage=open_storage(spec))
    fork = multiprocessing.get_context("fork")  # a worker in a few milliseconds, without importing anything again
    start = fork.Barrier(n_workers)
    workers = [fork.Process(target=reserve_until_full, args=(spec, n_trials, start)) for _ in range(n_workers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * n_workers

    trials = optuna.load_study(study_name="alexlab", storage=open_storage(spec)).trials
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.RUNNING) for n in range(n_trials)]
    assert {t.user_attrs["worker"].rpartition(":")[2] for t in trials} <= {str(w.pid) for w in workers}


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_two_workers_started_at_once_run_one_study_together(alexlab, tmp_path, request, kind):
    """The same command started twice at the same moment. On the journal file, both in one sweep dir (one machine);
    on PostgreSQL, each in a sweep dir of its own (two machines)."""
    if kind == "journal":
        spec, sweep_dirs = str(tmp_path / "sweep" / "optuna.journal"), [tmp_path / "sweep"] * 2
    else:
        spec, sweep_dirs = storage_spec(kind, tmp_path, request), [tmp_path / "machine0", tmp_path / "machine1"]
    args = ("-m", "hydra/sweeper=optuna", *FAST, ONE_EPOCH, LR, "hydra.sweeper.n_trials=4")
    args += (f"hydra.sweeper.storage='{spec}'", "hydra.sweeper.study_name=shared", "hydra/sweeper/sampler=random")
    args += ("hydra.sweeper.sampler.seed=0", f"hydra.sweeper.n_jobs={2 if kind == 'journal' else 1}")

    with ThreadPoolExecutor(2) as pool:
        # fresh processes, started alike: a second fork server would still be importing when the first run begins
        run = lambda d: alexlab(*args, f"hydra.sweep.dir={d}", expect_ok=False, fresh=True)  # noqa: E731
        results = list(pool.map(run, sweep_dirs))

    ran = []  # the trials each worker ran, from its log
    for result in results:
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        ran.append({int(n) for n in re.findall(r"Trial (\d+) COMPLETE", output)})
    assert not ran[0] & ran[1] and ran[0] | ran[1] == {0, 1, 2, 3}
    trials = optuna.load_study(study_name="shared", storage=open_storage(spec)).trials
    assert [(t.number, t.state) for t in trials] == [(n, TrialState.COMPLETE) for n in range(4)]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    assert len({t.params["optimizer.lr"] for t in trials}) == 4  # each worker's sampler got a seed of its own
    job_dirs = [job_dir for sweep_dir in sorted(set(sweep_dirs)) for job_dir in run_dirs(sweep_dir)]
    assert sorted(int(job_dir.name) for job_dir in job_dirs) == [0, 1, 2, 3]
    for job_dir in job_dirs:
        metrics = json.loads((job_dir / "metrics.json").read_text())
        assert metrics["status"] == "finished"
        assert job_env(job_dir)["ALEXLAB_OPTUNA_TRIAL"] == job_dir.name
