"""The sweeper's config: `hydra/sweeper=optuna`, with the groups `hydra/sweeper/sampler` and `hydra/sweeper/pruner`.

The keys and defaults are those of Hydra's official hydra-optuna-sweeper 1.3 (sampler, direction, storage,
study_name, n_trials, n_jobs, max_failure_rate, search_space, params, custom_search_space), plus `pruner`. Each
sampler and pruner takes the constructor arguments it has in Optuna 5 (arguments Optuna deprecated default to None,
which means Optuna's own default); the official `motpe` is Optuna's TPESampler, which took it over.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Direction(Enum):
    """hydra.sweeper.direction: one of these, or a list of them (one per value the task returns)."""

    minimize = 1
    maximize = 2


class DistributionType(Enum):
    """The `type` of a Hydra 1.1 `search_space` entry (still read, with a deprecation warning)."""

    int = 1
    float = 2
    categorical = 3


@dataclass
class DistributionConfig:
    """One entry of Hydra 1.1's `hydra.sweeper.search_space` (replaced by `params` in Hydra 1.2)."""

    type: DistributionType
    choices: list[Any] | None = None  # categorical
    low: float | None = None  # int or float
    high: float | None = None
    log: bool = False
    step: float | None = None


@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    group: bool = False
    constant_liar: bool = True
    # deprecated in Optuna 4.3-4.9 (removed in 6.0): None keeps Optuna's default without a warning
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    """Needs the `cmaes` package (pip install cmaes)."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: str | None = None
    popsize: int | None = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    # a sampler config ({_target_: optuna.samplers.RandomSampler}) for the params CMA-ES does not cover
    independent_sampler: Any = None
    # warm start from earlier trials: a list of FrozenTrials (e.g. from another study), as Optuna takes them
    source_trials: Any = None


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    # "module.function" (or a {_target_: ..., _partial_: true} config) called as function(frozen_trial) -> the
    # constraint values (feasible where all are <= 0)
    constraints_func: Any = None


@dataclass
class MOTPESamplerConfig(SamplerConfig):
    """The official plugin's `motpe`: Optuna 4 folded MOTPESampler into TPESampler, which handles several
    directions itself; n_ehvi_candidates becomes its n_ei_candidates."""

    _target_: str = "hydra_plugins.alexlab_optuna_sweeper.trials.motpe_sampler"
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    n_startup_trials: int = 10
    n_ehvi_candidates: int = 24


@dataclass
class GridSamplerConfig(SamplerConfig):
    """The grid is built from `params` (choice and range only); n_trials is capped at the grid's size."""

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    warn_independent_sampling: bool = True


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class NopPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # an int (epochs), or "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.alexlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # the sweeper builds the sampler and pruner itself (the grid needs the search space, a resumed study a new seed)
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])

    sampler: SamplerConfig = MISSING
    pruner: PrunerConfig = MISSING
    # minimize or maximize what the task function returns (alexlab: its `objective`, e.g. val/top1_err); a list of
    # directions when it returns that many values (a multi-objective study: the Pareto front is the result)
    direction: Any = Direction.minimize
    # null: the journal file <hydra.sweep.dir>/optuna.journal; a URL (sqlite:///x.db, postgresql://...): that
    # database; any other string: the path of a journal file. Re-running with the same storage resumes the study.
    storage: str | None = None
    # null: "alexlab"
    study_name: str | None = None
    # the number of trials the study ends with (trials left interrupted are run again and not counted)
    n_trials: int = 20
    # trials asked per launcher batch (the basic launcher runs them one after another)
    n_jobs: int = 2
    # stop when more than this fraction of a batch's trials failed (the last failure's error in the message)
    max_failure_rate: float = 0.0
    # Hydra 1.1's search space ({name: {type, low, high, step, log, choices}}): read with a deprecation warning
    search_space: dict[str, Any] | None = None
    # param -> Hydra sweep syntax: interval(0.001, 0.1), tag(log, interval(1e-4, 0.1)), choice(32, 64), range(1, 5),
    # a,b,c. A plain value is a fixed override for every trial.
    params: dict[str, str] | None = None
    # "module.function" called as function(cfg, trial) to suggest more params (their values in override syntax)
    custom_search_space: str | None = None


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="alexlab")
    samplers = {
        "tpe": TPESamplerConfig,
        "random": RandomSamplerConfig,
        "cmaes": CmaEsSamplerConfig,
        "nsgaii": NSGAIISamplerConfig,
        "motpe": MOTPESamplerConfig,
        "grid": GridSamplerConfig,
        "qmc": QMCSamplerConfig,
        "gp": GPSamplerConfig,
    }
    for name, node in samplers.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="alexlab")
    pruners = {"none": NopPrunerConfig, "median": MedianPrunerConfig, "hyperband": HyperbandPrunerConfig}
    for name, node in pruners.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="alexlab")


register()
