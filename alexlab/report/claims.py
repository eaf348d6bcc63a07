"""The paper's claims that `alexlab report` decides, and what each needs to be tested at all.

Each claim is about changing one switch from the paper's option to another (docs/paper.md gives the paper's words and
section for each). It is decided on the quantity the paper measured:

- ERROR: the held-out top-1 error on the centre view (test_centre, else the validation error at the best epoch),
  the view every network of a comparison was trained to see; the ten-crop claim compares the two views of the same
  runs instead (`within_run`);
- GAP: the overfitting gap, the final validation error minus the final train_eval error (training images evaluated
  as the validation images are), beside the loss gap measured the same way;
- STEPS: optimiser steps until the clean training error first reaches a threshold, as a ratio.

A comparison can only test a claim where the claim can show (DESIGN: validity of a comparison); otherwise the report
says why instead of a verdict, and the claim is left out of the study's error control:
- `confounded`: the two networks differ in parameters or MACs where the switch is not meant to change them (only
  `resizes` claims may: the paper's half-width one-GPU net, a removed layer);
- `not applicable`: PCA colour noise (`needs_colour`) on single-channel images, where it is one brightness shift;
- `not testable here`: LRN (`needs_lrn`) where its measured strength is below LRN_FLOOR (the inputs' scale leaves it
  a constant factor); a speed claim (STEPS) where the runs did not train at a constant learning rate with a clean
  training curve (the setting of the paper's Figure 1: alexlab sweep relu_speed, dropout_speed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from omegaconf import ListConfig

from alexlab.errors import BadValue

ERROR, GAP, STEPS = "error", "gap", "steps"
# LRN strength (alexlab.metrics.lrn_strength) below which an LRN is a constant factor to within 5%: the divisor
# (k + alpha * sum a^2)^beta = k^beta (1 + strength)^beta moves by (1 + 0.07)^0.75 - 1 = 5% at the mean
LRN_FLOOR = 0.07


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims about changing one switch from the baseline's option to the variant's."""

    measure: str  # ERROR, GAP or STEPS
    direction: int  # +1: the variant's measure is higher (a higher error, a larger gap, more steps); -1: lower
    paper: str  # what the paper says, in short, with its section
    top1: float | None = None  # error claims: points, variant minus baseline
    top5: float | None = None
    ratio: float | None = None  # steps claims: variant / baseline
    qualifier: str = ""  # "about", "over"
    resizes: bool = False  # the change is meant to change the network's parameters and MACs
    within_run: bool = False  # read within each run of the baseline (both test views), not against another row
    needs_colour: bool = False  # not applicable to single-channel images
    needs_lrn: bool = False  # not testable where the LRN's strength is below LRN_FLOOR

    def reversed(self) -> Claim:
        """The same claim read from the variant's side (a sweep whose baseline is the paper's variant)."""
        negate = lambda x: None if x is None else -x
        return replace(
            self,
            direction=-self.direction,
            top1=negate(self.top1),
            top5=negate(self.top5),
            ratio=None if self.ratio is None else 1 / self.ratio,
            qualifier={"over": "under"}.get(self.qualifier, self.qualifier),
        )

    def expected(self, top5: bool = True) -> str:
        """The paper's number in the report's sign convention (variant minus baseline, or variant / baseline); its
        top-5 figure only where `top5` (a data set of more than 10 classes, where top-5 means something)."""
        if self.measure == STEPS:
            return f"x{self.ratio:.2g}" if self.ratio is not None else ("more" if self.direction > 0 else "fewer")
        if self.top1 is None:
            return "larger" if self.direction > 0 else "smaller"
        numbers = f"{self.top1:+.1f}"
        if top5 and self.top5 is not None:
            numbers += f" / {self.top5:+.1f}"
        return " ".join(part for part in (self.qualifier, numbers) if part)


OVERFITTING = "substantial overfitting"
# The paper's ablation claims (Krizhevsky et al. 2012; docs/paper.md), as (switch, the paper's option, the option it
# compares against) -> claims about that change.
PAPER_CLAIMS: dict[tuple[str, str, str], tuple[Claim, ...]] = {
    ("lrn", "on", "off"): (
        Claim(ERROR, +1, "LRN lowers top-1/top-5 error by 1.4/1.2 points (3.3)", 1.4, 1.2, needs_lrn=True),
    ),
    ("pooling", "overlap", "plain"): (
        Claim(ERROR, +1, "overlapping pooling lowers top-1/top-5 error by 0.4/0.3 points (3.4)", 0.4, 0.3),
    ),
    ("split", "grouped", "half"): (
        Claim(
            ERROR,
            +1,
            "two towers lower top-1/top-5 error by 1.7/1.2 points against half the kernels (3.2)",
            1.7,
            1.2,
            resizes=True,
        ),  # fmt: skip
    ),
    ("depth", "5", "4"): (
        Claim(
            ERROR,
            +1,
            "removing a middle conv layer costs about 2 points top-1 (7)",
            2.0,
            qualifier="about",
            resizes=True,
        ),  # fmt: skip
    ),
    ("augment", "paper", "flip_crop"): (
        Claim(
            ERROR,
            +1,
            "PCA colour noise lowers top-1 error by over 1 point (4.1)",
            1.0,
            qualifier="over",
            needs_colour=True,
        ),  # fmt: skip
    ),
    ("test_views", "ten_crop", "centre"): (
        Claim(ERROR, +1, "averaging ten patches lowers the test error (4.1)", within_run=True),
    ),
    ("activation", "relu", "tanh"): (
        Claim(STEPS, +1, "ReLU reaches 25% training error 6x faster than tanh (3.1, Figure 1)", ratio=6.0),
    ),
    ("dropout", "on", "off"): (
        Claim(ERROR, +1, f"without dropout, {OVERFITTING}: a higher held-out error (4.2)"),
        Claim(GAP, +1, f"without dropout, {OVERFITTING}: a larger gap to the training error (4.2)"),
        Claim(STEPS, -1, "dropout roughly doubles the iterations to converge (4.2)", ratio=0.5, qualifier="about"),
    ),
    ("augment", "paper", "none"): (
        Claim(ERROR, +1, f"without crops and flips, {OVERFITTING}: a higher held-out error (4.1)"),
        Claim(GAP, +1, f"without crops and flips, {OVERFITTING}: a larger gap to the training error (4.1)"),
    ),
    ("augment", "flip_crop", "none"): (
        Claim(ERROR, +1, f"without crops and flips, {OVERFITTING}: a higher held-out error (4.1)"),
        Claim(GAP, +1, f"without crops and flips, {OVERFITTING}: a larger gap to the training error (4.1)"),
    ),
}
# The switch whose claim is read within each run of the baseline (both of its test views), and its two options
WITHIN_RUN = ("test_views", "ten_crop", "centre")


def claim_names() -> tuple[str, ...]:
    """The names a sweep can give its claims by (hydra.sweeper.claims): a switch ("dropout": all of its claims) or a
    switch and a measure ("dropout.steps")."""
    switches = sorted({switch for switch, _, _ in PAPER_CLAIMS})
    measures = sorted({f"{switch}.{c.measure}" for (switch, _, _), claims in PAPER_CLAIMS.items() for c in claims})
    return (*switches, *measures)


def check_claim_names(names, where: str) -> tuple[str, ...] | None:
    """A sweep's claim names, one or a list (None: every claim), or BadValue naming the one that is not a claim's."""
    if names is None:
        return None
    listed = [names] if isinstance(names, str) else list(names) if isinstance(names, (list, tuple, ListConfig)) else []
    if not listed or not all(isinstance(name, str) for name in listed):
        raise BadValue(f"{where}claims={names}: give a list of claim names, e.g. [dropout.error,test_views], or null")
    known = claim_names()
    for name in listed:
        if name not in known:
            raise BadValue(f"{where}claims: no claim is named {name!r}; the names: {', '.join(known)}")
    if len(set(listed)) < len(listed):
        raise BadValue(f"{where}claims={listed}: a claim is named twice")
    return tuple(listed)


def is_named(switch: str, claim: Claim, names: tuple[str, ...] | None) -> bool:
    """Whether the claim about `switch` is one of a sweep's named claims (None: every claim is)."""
    return names is None or switch in names or f"{switch}.{claim.measure}" in names


def claims_about(switch: str, before: str | None, after: str | None) -> tuple[Claim, ...]:
    """The paper's claims about changing `switch` from `before` (the baseline's option) to `after`."""
    if (switch, before, after) in PAPER_CLAIMS:
        return PAPER_CLAIMS[switch, before, after]
    if (switch, after, before) in PAPER_CLAIMS:
        return tuple(claim.reversed() for claim in PAPER_CLAIMS[switch, after, before])
    return ()
