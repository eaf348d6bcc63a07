"""The paper's claims on a sweep's rows: which apply to which row, which can be read (alexlab.report.claims), their
comparisons, and their verdicts together over the study (alexlab.stats)."""

from __future__ import annotations

import math
import statistics
from collections import Counter

from alexlab import metrics
from alexlab.report.claims import ERROR, GAP, LRN_FLOOR, STEPS, WITHIN_RUN, Claim, claims_about, is_named
from alexlab.report.model import (
    CENTRE,
    CONFOUNDED,
    LOSS_GAP,
    NOT_APPLICABLE,
    NOT_COMPONENTS,
    NOT_NAMED,
    NOT_READ,
    NOT_TESTABLE,
    TEN_CROP,
    Finding,
    Row,
    Run,
)
from alexlab.stats import Claimed, Looks, compare, read_claims, seeds_needed, seeds_won


def paper_claims(row: Row, base: Row) -> tuple[str, str, tuple[Claim, ...]]:
    """The switch `row` changes against the baseline, the change ("lrn on->off") and the paper's claims about it; for
    the baseline, the claim it holds within its own runs (ten crops against the centre view), where they recorded
    both. ("", "", ()) where the row changes no one switch."""
    if row is base:
        switch, before, after = WITHIN_RUN
        if not (row.runs and all(CENTRE in run.values and TEN_CROP in run.values for run in row.runs)):
            return "", "", ()
        return switch, f"{switch} {before}->{after} (within each run)", claims_about(*WITHIN_RUN)
    keys = (set(row.switches) | set(base.switches)) - NOT_COMPONENTS
    changed = [k for k in sorted(keys) if row.switches.get(k) != base.switches.get(k)]
    if len(changed) != 1 or row.settings != base.settings:
        return "", "", ()
    (key,) = changed
    before, after = base.switches.get(key), row.switches.get(key)
    claims = claims_about(key, before, after)
    if key == WITHIN_RUN[0] and base.runs and all(CENTRE in r.values and TEN_CROP in r.values for r in base.runs):
        claims = ()  # both views are in every run: the claim is read within the baseline's runs instead
    return key, f"{key} {before}->{after}", claims


def findings(
    row: Row, base: Row, claim: Claim, thresholds: tuple[float, ...], names: tuple[str, ...] | None = None
) -> list[Finding]:
    """One claim on one row: its measure compared (paired where seeds match), and why it cannot be read, if it
    cannot (not among the sweep's claim `names`, or not_read); a speed claim once for each threshold. The verdicts
    come together, over the study (decide_study)."""
    centre = by_seed(row, CENTRE)
    if claim.within_run:  # the baseline's own runs, or (runs that tested one view) the test_views row against it
        ten_crop = by_seed(base, TEN_CROP)
        found = [Finding(row.change, claim, TEN_CROP, compare(centre, ten_crop), "undecided", row_index=row.index,
                         seeds_won=seeds_won(centre, ten_crop))]  # fmt: skip
    elif claim.measure == STEPS:
        found = [speed_finding(row, base, claim, t) for t in thresholds]
    else:
        measure = held_out(row, base) if claim.measure == ERROR else claim.measure
        found = [Finding(row.change, claim, measure, row.differences[measure], "undecided", row_index=row.index)]
        if measure == GAP:
            found[0].loss_gap = row.differences.get(LOSS_GAP)
    if not is_named(row.switch, claim, names):
        why_not = NOT_NAMED, f"the sweep is for {', '.join(names)} (hydra.sweeper.claims): read it in its own sweep"
    else:
        why_not = not_read(row, base, claim)
    for f in found:
        if not claim.within_run and claim.measure != STEPS:
            f.seeds_won = seeds_won(*paired_values(row, base, held_out(row, base)))
        if why_not:
            f.verdict, f.reason = why_not
    return found


def speed_finding(row: Row, base: Row, claim: Claim, threshold: float) -> Finding:
    """A speed claim at one threshold: the steps of the two rows' runs as a ratio, a run that never got there counted
    at the last step its curve measured (at least that many steps), so that it still informs the verdict; which end of
    the interval then holds (`bounded`, alexlab.stats.read). A run already there at its first point cannot be counted:
    the claim is left undecided."""
    (variant, v_never, v_first), (baseline, b_never, b_first) = steps_of(row, threshold), steps_of(base, threshold)
    comparison = compare(variant, baseline, log_scale=True)
    found = Finding(row.change, claim, STEPS, comparison, "undecided", row_index=row.index, threshold=threshold,
                    censored=v_never + v_first + b_never + b_first, seeds_won=seeds_won(variant, baseline),
                    clean=all(run.clean_curve for run in (*row.runs, *base.runs)))  # fmt: skip
    if v_first or b_first or (v_never and b_never):
        found.bounded = 2  # no end of the interval holds: undecided
    elif v_never or b_never:  # the variant's steps (v_never) or the baseline's are at least what is counted
        found.bounded = 1 if v_never else -1
    return found


def steps_of(row: Row, threshold: float) -> tuple[dict, int, int]:
    """The row's steps to `threshold` keyed by seed (by_seed's keys), a run that never got there at the last step of
    its curve; and how many runs never got there, and how many were there at their first point (not counted)."""
    seeds = Counter(run.seed for run in row.runs)
    values, never, first = {}, 0, 0
    for run in row.runs:
        key = run.seed if run.seed is not None and seeds[run.seed] == 1 else f"job {run.job}"
        kind = run.censored_at.get(threshold)
        if threshold in run.steps:
            values[key] = run.steps[threshold]
        elif kind == "never" and run.train_curve[-1][0] > 0:
            values[key], never = run.train_curve[-1][0], never + 1
        elif kind is not None:
            first += 1
    return values, never, first


def not_read(row: Row, base: Row, claim: Claim) -> tuple[str, str] | None:
    """(CONFOUNDED, NOT_APPLICABLE or NOT_TESTABLE, why) where the comparison cannot test the claim
    (alexlab.report.claims); None where it can."""
    if not claim.resizes and row is not base and row.size and base.size:
        (p, m), (p0, m0) = row.size, base.size
        if p != p0 or (m is not None and m0 is not None and m != m0):
            macs = f", {m / 1e6:.3g} M against {m0 / 1e6:.3g} M MACs" if m and m0 else ""
            return CONFOUNDED, f"the networks differ in more than the switch: {p:,} against {p0:,} parameters{macs}"
    runs = [*row.runs, *base.runs]
    if claim.needs_colour and any(channels_of(run) == 1 for run in runs):
        return NOT_APPLICABLE, "PCA colour noise on single-channel images is one brightness shift, not colour"
    if claim.needs_lrn:
        with_lrn = [run for run in runs if run.lrn_strength is not None]
        if not with_lrn:
            scale = {str(run.config.get("data", {}).get("scale", "unit")) for run in runs}
            return NOT_TESTABLE, (f"the LRN's strength was not recorded (inputs at data.scale={'/'.join(scale)}); "
                                  f"it is read where alpha * sum a^2 / k reaches {LRN_FLOOR:g}")  # fmt: skip
        strength = statistics.fmean(run.lrn_strength for run in with_lrn)
        if strength < LRN_FLOOR:
            return NOT_TESTABLE, (
                f"the LRN divides by a near constant: alpha * sum a^2 / k is {strength:.2g} on "
                f"average, below {LRN_FLOOR:g} (the inputs' scale: data.scale=raw is the paper's)"
            )
    if claim.measure == STEPS:
        rates = {schedule_of(run) for run in runs}
        if rates != {"constant"}:
            return NOT_TESTABLE, (f"steps to a training error need a constant learning rate (these runs: "
                                  f"{', '.join(sorted(map(str, rates)))} schedule) and a clean training curve, as "
                                  "the paper's Figure 1: alexlab sweep relu_speed / dropout_speed")  # fmt: skip
        if not all(run.clean_curve for run in runs):
            return NOT_TESTABLE, ("steps to a training error need the clean training error (eval mode, a fixed "
                                  "sample: train_clean_every), not the error as trained with dropout and "
                                  "augmentation")  # fmt: skip
    return None


def decide_study(findings: list[Finding], looks: Looks, alpha: float, margin: float, ratio_margin: float) -> None:
    """The verdicts of every claim that can be read, together (alexlab.stats.read_claims: Holm's step-down over the
    claims, repeated intervals over the looks); a speed claim with a censored run stays undecided."""
    readable = [f for f in findings if f.verdict not in NOT_READ]
    items = [(f.comparison, claimed(f, margin, ratio_margin)) for f in readable]
    bounds = [f.bounded * f.claim.direction if f.bounded in (1, -1) else f.bounded for f in readable]  # claim side up
    for f, (comparison, claim), reading in zip(readable, items, read_claims(items, looks, alpha, bounds), strict=True):
        f.reading, f.verdict = reading, reading.verdict
        if f.verdict == "undecided" and not f.censored:
            f.seeds_needed = seeds_needed(comparison, claim, reading.alpha, looks)


def claimed(f: Finding, margin: float, ratio_margin: float) -> Claimed:
    """What a finding's comparison is read against, on its own scale (points, or a log ratio)."""
    claim = f.claim
    if f.measure == STEPS:
        size = abs(math.log(claim.ratio)) if claim.ratio else None
        return Claimed(claim.direction, size, math.log(ratio_margin))
    size = abs(claim.top1) if claim.top1 is not None and claim.measure == ERROR else None
    return Claimed(claim.direction, size, margin)


def held_out(row: Row, base: Row) -> str:
    """The held-out error an error claim is read on: the centre-view test error where every run of both rows has
    one, else the validation error at the best epoch (both centre views)."""
    runs = [*row.runs, *base.runs]
    return CENTRE if runs and all(CENTRE in run.values for run in runs) else metrics.VAL_TOP1


def network_size_of(row: Row) -> tuple[int, int | None] | None:
    """(parameters, MACs) of a row's network: as its first finished run's record says them, else as the config it
    saved builds it (alexlab.info.network_size) where that gives the parameters the record says, which a record
    written by an older network would not (its MACs then stay unknown); None where unknown."""
    run = next((run for run in row.runs if run.parameters or run.config.get("model")), None)
    if run is None:
        return None
    if run.parameters and run.macs:
        return run.parameters, run.macs
    built = built_size(run.config)
    if built is None:
        return (run.parameters, None) if run.parameters else None
    if run.parameters and built[0] != run.parameters:
        return run.parameters, None
    return built


def built_size(config: dict) -> tuple[int, int] | None:
    """(parameters, MACs) of the network a run's saved config builds; None where it cannot be built."""
    from omegaconf import OmegaConf

    from alexlab.info import network_size

    try:
        return network_size(OmegaConf.to_container(OmegaConf.create(config).model, resolve=True))
    except Exception:  # noqa: BLE001 -- a config of another version or a model that cannot be built: size unknown
        return None


def channels_of(run: Run) -> int | None:
    return _integer(run.config.get("data", {}).get("channels"))


def classes_of(run: Run) -> int | None:
    return _integer(run.config.get("data", {}).get("num_classes"))


def schedule_of(run: Run) -> str | None:
    schedule = run.config.get("schedule")
    return schedule.get("name") if isinstance(schedule, dict) else None


def _integer(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def by_seed(row: Row, measure: str) -> dict:
    """The row's values of a measure keyed by seed, for pairing; a run whose seed is missing or repeated in the row
    (two copies of a sweep, say) is keyed by its job instead, so that it is never paired."""
    seeds = Counter(run.seed for run in row.runs)
    return {
        run.seed if run.seed is not None and seeds[run.seed] == 1 else f"job {run.job}": run.values[measure]
        for run in row.runs
        if measure in run.values
    }


def paired_values(row: Row, base: Row, measure: str) -> tuple[dict, dict]:
    return by_seed(row, measure), by_seed(base, measure)
