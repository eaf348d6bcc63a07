"""Seed rounds: a grid of configurations run seed by seed, until the paper's claims are decided or a budget is spent.

`hydra/sweeper=seed_rounds` (sweeps/paper_ablations.yaml): the grid is Hydra's basic sweep of `params` and the
command line's a,b,c lists; each round runs the configurations of the grid with one more seed (round r: seed =
first_seed + r, first_seed 0 unless a follow-up study starts on seeds no earlier sweep ran).

- `seeds: N`: exactly N rounds, seeds first_seed .. first_seed + N - 1, every configuration in each (the basic
  sweeper's `seed=range(first_seed, first_seed + N)` with the seed outermost).
- `seeds: auto`: after each round from `min_seeds` on, `alexlab report`'s verdicts on the sweep directory decide:
  once no claim of the paper is `undecided`, no more rounds; and within the rounds, a configuration whose claims are
  all decided gets no more seeds (the baseline runs while any claim is open). It also stops after `max_seeds`
  rounds, or once the runs' training time in the sweep directory adds up to `time_budget_h` hours (the runs' own
  wall times, failed and interrupted runs included, copies of a run not; so a resumed sweep counts what it spent
  before). Where the report cannot be built, the rounds go on (more seeds lose nothing) and the log says why.

Round r's job for configuration i is numbered r x (grid size) + i, whatever happened before and whichever
configurations the round runs, so the same command run again in the same sweep directory finds every job where it
left it: finished jobs are not run again (alexlab.train), an interrupted one resumes from its checkpoint, and the
decisions after each round are taken again from what the directory holds. The report (report.md and the rest) is
rewritten after every round, so a long study can be read while it runs. Its verdicts are read as the report reads
this sweep's directory (alexlab.stats: Holm over the claims, repeated intervals over the looks from min_seeds to
max_seeds, so that stopping at a decided look keeps the study's error rate), with `margin`, `ratio_margin` and
`threshold` (hydra.sweeper.margin=0.5: the report's --margin; null for its default), which multirun.yaml keeps for
a later `alexlab report`. `seeds`, `min_seeds`, `max_seeds` and `time_budget_h` say how long to go on, not what a
run is: they are not part of a run's identity (alexlab.record.SWEEP_CONTROLS).
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from alexlab.errors import BadValue
from alexlab.record import MULTIRUN, seed_round_job

log = logging.getLogger("alexlab")
MAX_SEED = 2**32 - 1  # the largest seed Lightning's seed_everything takes


@dataclass
class SeedRoundsConf:
    _target_: str = "hydra_plugins.alexlab_seed_rounds.seed_rounds.SeedRoundsSweeper"
    # the grid of every round: key -> Hydra sweep syntax (a,b,c), as the basic sweeper's params
    params: dict[str, str] = field(default_factory=dict)
    # a number of rounds, or "auto": rounds until every claim is decided (module docstring)
    seeds: Any = 3
    # seeds=auto: never decide on fewer rounds than this (a paired interval needs 2; 3 gives it a spread to trust)
    min_seeds: int = 3
    # seeds=auto: at most this many rounds
    max_seeds: int = 10
    # seeds=auto: no new round once the finished runs' training time adds up to this many hours (null: no limit)
    time_budget_h: float | None = None
    # the config key each round sets
    seed_key: str = "seed"
    # the report options its verdicts are read with (null: the report's defaults); saved in multirun.yaml, where
    # `alexlab report` on the sweep directory reads them too (alexlab.report.design.sweep_design)
    margin: float | None = None
    ratio_margin: float | None = None
    threshold: Any = None  # a training error in percent, or a list of them (the speed claims read at each)
    # the row the report compares the others with, as its --baseline (KEY=VALUE[,...]); null: the report's rule
    baseline: str | None = None
    # the claims the sweep is for (alexlab.report.claims.claim_names: "dropout", "dropout.error"); the others are
    # neither read nor waited for, nor counted in the study's error rate; null: every claim its rows can read
    claims: Any = None
    # the seed of the first round: a follow-up study on seeds no earlier sweep ran (its runs independent of theirs)
    first_seed: int = 0


ConfigStore.instance().store(group="hydra/sweeper", name="seed_rounds", node=SeedRoundsConf, provider="alexlab")


class SeedRoundsSweeper(BasicSweeper):
    def __init__(
        self,
        params: dict[str, str] | None = None,
        seeds: Any = 3,
        min_seeds: int = 3,
        max_seeds: int = 10,
        time_budget_h: float | None = None,
        seed_key: str = "seed",
        margin: float | None = None,
        ratio_margin: float | None = None,
        threshold: Any = None,
        baseline: str | None = None,
        claims: Any = None,
        first_seed: int = 0,
    ) -> None:
        from alexlab.report import check_options
        from alexlab.report.claims import check_claim_names

        check_options(threshold, margin, ratio_margin, None, prefix="hydra.sweeper.")
        check_claim_names(claims, "hydra.sweeper.")
        super().__init__(max_batch_size=None, params=dict(params or {}))
        self.auto = str(seeds) == "auto"
        if not self.auto and not (isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1):
            raise BadValue(f"seeds={seeds}: give a number of seeds (>= 1) or seeds=auto")
        whole = (("min_seeds", min_seeds, 1), ("max_seeds", max_seeds, 1), ("first_seed", first_seed, 0))
        for name, value, least in whole:
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BadValue(f"{name}={value}: must be a whole number >= {least}")
        if self.auto and min_seeds > max_seeds:
            raise BadValue(f"min_seeds={min_seeds} is more than max_seeds={max_seeds}")
        if time_budget_h is not None and not time_budget_h > 0:
            raise BadValue(f"time_budget_h={time_budget_h}: a number of hours > 0, or null for no limit")
        self.rounds = max_seeds if self.auto else seeds
        self.min_seeds, self.time_budget_h, self.seed_key = min_seeds, time_budget_h, seed_key
        self.first_seed = first_seed
        if first_seed + self.rounds - 1 > MAX_SEED:
            raise BadValue(f"first_seed={first_seed}: its {self.rounds} rounds' seeds must stay <= {MAX_SEED}")

    def sweep(self, arguments: list[str]) -> list:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        if any(override.get_key_element().lstrip("+~") == self.seed_key for override in overrides):
            raise BadValue(f"{self.seed_key} is set by the rounds of this sweep: give seeds=N or seeds=auto instead")
        (grid,) = self.split_arguments(overrides, None)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / MULTIRUN)  # as the basic sweeper (secrets: MaskSecrets)
        returns = []
        for seed in range(self.rounds):
            report = self.current_report(sweep_dir, seed) if self.auto else None
            reason = self.reason_to_stop(sweep_dir, seed, report) if self.auto else None
            if reason:
                log.info("seeds=auto: no more rounds after %d: %s", seed, reason)
                break
            arms = self.arms_to_run(grid, report, seed)
            log.info("round %d of at most %d: %d of %d configurations with %s=%d", seed + 1, self.rounds, len(arms),
                     len(grid), self.seed_key, self.first_seed + seed)  # fmt: skip
            for first, last in spans(arms):  # job r x (grid size) + i for arm i, whichever arms run this round
                batch = [seed_round_job(job, self.seed_key, self.first_seed, seed) for job in grid[first : last + 1]]
                if seed == 0:  # each configuration composes once, before anything trains; later rounds change the seed
                    self.validate_batch_is_legal(batch)
                results = self.launcher.launch(batch, initial_job_idx=seed * len(grid) + first)
                for result in results:
                    _ = result.return_value  # as the basic sweeper: a job that raised stops the sweep
                returns.append(results)
            self.write_report(sweep_dir)
        else:
            if self.auto:
                report = self.current_report(sweep_dir, self.rounds)
                reason = self.reason_to_stop(sweep_dir, self.rounds, report)
                log.info("seeds=auto: no more rounds after %d: %s", self.rounds, reason or "max_seeds reached")
        return returns

    @staticmethod
    def current_report(sweep_dir: Path, seed: int):
        """The report on what the sweep directory holds before round `seed`, or None (none yet, or one that cannot
        be built: the rounds go on, and the log says why)."""
        from alexlab.report import build_report

        if seed == 0 or not any(sweep_dir.iterdir()):
            return None
        try:
            return build_report(sweep_dir)
        except Exception as exc:  # e.g. a run dir the report refuses: no decision, so go on (max_seeds still holds)
            log.warning("seeds=auto: no decision after %d seeds (%s: %s); going on", seed, type(exc).__name__, exc)
            return None

    def arms_to_run(self, grid: list[list[str]], report, seed: int) -> list[int]:
        """The grid's configurations that round `seed` runs: all of them, except (seeds=auto) those whose claims are
        all decided, so that no seed goes to a verdict already read. A claim that cannot be read here (confounded,
        not applicable, not testable) is decided from the first round on, a verdict once min_seeds rounds ran; the
        baseline runs while any claim is open, and so does a configuration without claims of its own."""
        if report is None:
            return list(range(len(grid)))
        from alexlab.record import identity
        from alexlab.report import NOT_READ
        from alexlab.report.model import NOT_NAMED

        def settled(finding) -> bool:
            return finding.verdict in NOT_READ or (finding.decided and seed >= self.min_seeds) or finding.bounded == 2

        anything_open = not all(settled(f) for f in report.findings)
        arms = []
        for i, job in enumerate(grid):
            row = next((row for row in report.rows if any(self.same_job(run, job, identity) for run in
                                                          [*row.runs, *row.unfinished])), None)  # fmt: skip
            if row is None or not row.findings or row is report.baseline:
                keep = anything_open if row is not None else True
                keep = keep or (row is report.baseline and not all(settled(f) for f in row.findings))
            else:
                keep = not all(settled(f) for f in row.findings)
            if keep:
                arms.append(i)
            elif seed >= 1 and row is not None:
                why = ("its claims are not this sweep's (hydra.sweeper.claims)" if row.findings and
                       all(f.verdict == NOT_NAMED for f in row.findings) else "its claims are decided")  # fmt: skip
                log.info("seeds=auto: %s gets no more seeds: %s", row.label, why)
        return arms

    def same_job(self, run, job: list[str], identity) -> bool:
        """Whether `run` is one of the grid's configuration `job` (its overrides but the seed)."""
        held = sorted(o for o in run.overrides if o.partition("=")[0].lstrip("+~") != self.seed_key)
        return held == sorted(identity(job))

    def reason_to_stop(self, sweep_dir: Path, seed: int, report) -> str | None:
        """Why no round `seed` (seeds=auto): every claim decided, or the time budget spent; None to go on."""
        from alexlab.record import COPY
        from alexlab.report import read_runs

        if seed == 0 or not any(sweep_dir.iterdir()) or (self.time_budget_h is None and seed < self.min_seeds):
            return None
        if self.time_budget_h is not None:  # the runs' own times, read again only where no report could be built
            runs = report.runs if report is not None else read_runs(sweep_dir)
            spent = sum(run.wall_time_s or 0.0 for run in runs if run.status != COPY) / 3600
            if spent >= self.time_budget_h:
                return f"the runs' training time, {spent:.2f} h, reached time_budget_h={self.time_budget_h:g}"
        if report is None or seed < self.min_seeds:
            return None
        if not report.findings:
            return "no configuration differs from the baseline in a switch the paper makes a claim about"
        tally = Counter(finding.verdict for finding in report.findings)
        # a speed claim with runs censored on both sides, or at their first point, stays undecided whatever more
        # seeds show
        open_claims = [f for f in report.undecided() if f.bounded != 2]
        if open_claims:
            undecided = ", ".join(f"{f.change} ({f.measure})" for f in open_claims)
            log.info("after %d seeds: %s; still undecided: %s", seed, dict(tally), undecided)
            return None
        decided = ", ".join(f"{n} {v}" for v, n in tally.items())
        if report.unmatched:  # more seeds of these configurations cannot test them
            decided += f"; no configuration of this sweep tests {', '.join(report.unmatched)} (hydra.sweeper.claims)"
        if tally["undecided"]:
            censored = ", ".join(f"{f.change} ({f.censored} runs censored)" for f in report.undecided())
            return f"every claim more seeds could decide is decided ({decided}; censored at the threshold: {censored})"
        return f"every claim is decided ({decided})"

    @staticmethod
    def write_report(sweep_dir: Path) -> None:
        from alexlab.report import build_report, write_report

        try:
            write_report(build_report(sweep_dir))
        except Exception as exc:  # the runs are kept; the report is written again at the sweep's end
            log.warning("no report after this round (%s: %s)", type(exc).__name__, exc)


def spans(indices: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive numbers as (first, last): [0, 1, 2, 5, 7, 8] -> [(0, 2), (5, 5), (7, 8)]."""
    result: list[list[int]] = []
    for i in indices:
        if result and result[-1][1] == i - 1:
            result[-1][1] = i
        else:
            result.append([i, i])
    return [(first, last) for first, last in result]
