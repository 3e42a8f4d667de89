"""Verdicts: a claim, the tests it rests on, and the one rule that decides it (``decide``).

Every claim the project makes (across languages, across modalities, across models, features against neurons,
steering, splicing) is a ``Verdict`` built here from ``Test``s. A test holds

- a **statistic** and its **null** (``Score``: the same statistic where the effect is destroyed: concepts
  permuted, rows shuffled, other concepts' features): the p-value;
- a **baseline** (the same statistic on something with nothing learnt: random directions of the same width and L0,
  the random-init model, mean-ablation): the effect is measured beyond it, so it can win;
- a **floor**, declared in the step's config before the run: the smallest effect that counts;
- an **interval** of the effect over what varies (SAE seeds on both sides, concepts or rows; ``cluster_bootstrap``);
- its **power** (``Power``): how often the rule passes on effects planted by construction at the run's sample
  sizes, and so the smallest effect it detects in 80% of simulations (the minimum detectable effect, MDE).

The rule:

1. **cannot be tested** when a test the claim rests on could not be computed (it says why);
2. **supported** when every test passes: p <= ALPHA, effect beyond the baseline >= floor, interval above 0;
3. **not supported** when a test fails and its data exclude the effect it can detect (the interval's high end is
   below its MDE): an effect the test would have seen is not there;
4. **inconclusive at this sample size** otherwise: a test failed, but an effect it could detect is not excluded
   (or it detects nothing in 80% of simulations at this size).

>>> from mmfeatures.analysis.stats import Score
>>> t = Test("fraction beyond random directions", Score("fraction", 0.2, np.zeros(19)), baseline=0.05,
...          interval=(0.1, 0.2), power=Power((0.02, 0.05), (0.3, 0.9), 20, "planted units"))
>>> decide("Units are shared", (t,)).status.value
'supported'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from mmfeatures.analysis.stats import ALPHA, Score, p_text
from mmfeatures.errors import InputError

POWER = 0.8
"""The detection rate that defines a test's minimum detectable effect."""
Z95 = 1.959964


class Status(str, Enum):
    SUPPORTED = "supported"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive at this sample size"
    UNTESTABLE = "cannot be tested"

    @property
    def supported(self) -> bool | None:
        """True, False, or None where the data cannot say (inconclusive, cannot be tested)."""
        return {"supported": True, "not supported": False}.get(self.value)


def fmt(x: float) -> str:
    """Three significant digits ('nan', 'inf' as such)."""
    return f"{x:.3g}" if np.isfinite(x) else str(x)


@dataclass(frozen=True)
class Power:
    """How often a test's rule passes on effects planted by construction at the run's sample sizes."""

    effects: tuple[float, ...]
    """The effect (beyond the baseline, in the test's units) measured on each planted size, ascending."""
    detected: tuple[float, ...]
    """The share of simulations at that size in which the test passed."""
    simulations: int
    """Simulations per size."""
    how: str
    """What was planted, in words."""

    @property
    def mde(self) -> float:
        """The smallest effect detected in >= 80% of simulations, linear between the simulated sizes (inf when no
        size reaches it, NaN when nothing was simulated)."""
        if not self.effects:
            return float("nan")
        e, d = np.asarray(self.effects, float), np.asarray(self.detected, float)
        order = np.argsort(e)
        e, d = e[order], np.maximum.accumulate(d[order])          # detection cannot fall as the effect grows
        above = np.flatnonzero(d >= POWER)
        if not len(above):
            return float("inf")
        i = above[0]
        if i == 0 or d[i] == d[i - 1]:
            return float(e[i])
        return float(e[i - 1] + (POWER - d[i - 1]) * (e[i] - e[i - 1]) / (d[i] - d[i - 1]))

    def sentence(self) -> str:
        mde = self.mde
        if not np.isfinite(mde):
            return (f"no planted effect up to {fmt(max(self.effects, default=float('nan')))} was detected in "
                    f"{POWER:.0%} of {self.simulations} simulations ({self.how})")
        return f"detects an effect of {fmt(mde)} with {POWER:.0%} power ({self.simulations} simulations per size, {self.how})"

    def row(self) -> dict[str, Any]:
        return {"effects": list(self.effects), "detected": list(self.detected), "simulations": self.simulations,
                "how": self.how, "mde": self.mde}


@dataclass(frozen=True)
class Test:
    """One statistic a claim rests on, against its null and its baseline (see the module docstring)."""

    name: str
    """What the effect is called, e.g. 'multilingual fraction beyond random directions'."""
    score: Score | None
    """The statistic and its null draws; None when it could not be computed (``reason`` says why)."""
    baseline: float | None = None
    """The same statistic on the baseline; None: the null's mean is the reference."""
    baseline_name: str = ""
    floor: float = 0.0
    """The smallest effect beyond the baseline that counts (declared before the run)."""
    estimate: float | None = None
    """The effect over what varies (e.g. the mean over SAE seeds of each seed's value minus the reference), which
    ``interval`` covers; None: the headline value minus the reference."""
    interval: tuple[float, float] | None = None
    """95% interval of the effect over ``interval_over``; None: from the null's spread (effect ± 1.96 sd)."""
    interval_over: str = ""
    power: Power | None = None
    reason: str = ""
    """Why ``score`` is None."""

    @property
    def computed(self) -> bool:
        return self.score is not None and np.isfinite(self.score.value)

    @property
    def reference(self) -> float:
        """What the effect is measured from: the baseline, else the null's mean."""
        assert self.score is not None, f"{self.name}: no score ({self.reason})"
        return self.score.null_mean if self.baseline is None else float(self.baseline)

    @property
    def effect(self) -> float:
        """Value beyond the reference, positive in the claimed direction (``estimate`` when given)."""
        if not self.computed:
            return float("nan")
        if self.estimate is not None:
            return float(self.estimate)
        sign = 1.0 if self.score.alternative == "greater" else -1.0
        return sign * (self.score.value - self.reference)

    @property
    def bounds(self) -> tuple[float, float]:
        if self.interval is not None:
            return float(self.interval[0]), float(self.interval[1])
        sd = self.score.null_sd if self.computed else float("nan")
        return self.effect - Z95 * sd, self.effect + Z95 * sd

    @property
    def p_value(self) -> float:
        return self.score.p_value if self.computed else float("nan")

    def checks(self) -> dict[str, bool]:
        """Each condition of the rule, by name."""
        lo, _ = self.bounds
        return {"p": bool(self.p_value <= ALPHA), "floor": bool(self.effect >= self.floor),
                "interval": bool(lo > 0)}

    @property
    def passes(self) -> bool:
        return self.computed and all(self.checks().values())

    @property
    def excludes(self) -> bool:
        """The data exclude an effect this test detects with 80% power: its interval ends below the MDE."""
        if not self.computed or self.power is None:
            return False
        mde = self.power.mde                 # inf: no planted effect was detected, so nothing can be excluded
        return bool(np.isfinite(mde) and self.bounds[1] < mde)

    def sentence(self) -> str:
        if not self.computed:
            return f"{self.name}: cannot be computed ({self.reason or 'no value'})."
        s = self.score
        lo, hi = self.bounds
        ref = (f"null {fmt(s.null_mean)} ± {fmt(s.null_sd)}" + (f", {self.baseline_name or 'baseline'} "
                                                                f"{fmt(self.baseline)}" if self.baseline is not None else ""))
        over = f" over {self.interval_over}" if self.interval is not None and self.interval_over else (
            "" if self.interval is not None else " from the null's spread")
        text = (f"{self.name}: {fmt(s.value)} ({ref}; {p_text(s.p_value, len(s.null))}); effect {fmt(self.effect)} "
                f"[95% interval {fmt(lo)} to {fmt(hi)}{over}]")
        if self.floor:
            text += f", floor {fmt(self.floor)}"
        if self.power is not None:
            text += f"; {self.power.sentence()}"
        return text + "."

    def row(self) -> dict[str, Any]:
        lo, hi = self.bounds
        return {"test": self.name, "value": self.score.value if self.computed else float("nan"),
                "null_mean": self.score.null_mean if self.computed else float("nan"),
                "p_value": self.p_value, "n_perm": len(self.score.null) if self.score is not None else 0,
                "baseline": self.baseline, "baseline_name": self.baseline_name, "effect": self.effect,
                "low": lo, "high": hi, "interval_over": self.interval_over, "floor": self.floor,
                "passes": self.passes, "excludes": self.excludes, "reason": self.reason,
                "power": self.power.row() if self.power is not None else None}


@dataclass(frozen=True)
class Verdict:
    """A claim decided from its tests by ``decide``."""

    claim: str
    status: Status
    tests: tuple[Test, ...]
    why: str
    """One sentence: which test decided it, and how."""
    details: str = ""
    """The step's own description of what was measured."""
    rests_on: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def supported(self) -> bool | None:
        return self.status.supported

    @property
    def text(self) -> str:
        aside = [f"{t.name} cannot be computed ({t.reason}), so the verdict rests on {', '.join(self.rests_on)}."
                 for t in self.tests if not t.computed and t.name not in self.rests_on]
        parts = [f"{self.status.value.capitalize()}. {self.why}", self.details,
                 " ".join(t.sentence() for t in self.tests if t.computed), *aside, *self.notes]
        return " ".join(p for p in parts if p)

    def row(self) -> dict[str, Any]:
        return {"claim": self.claim, "status": self.status.value, "why": self.why,
                "tests": [t.row() for t in self.tests], "rests_on": list(self.rests_on)}


def decide(claim: str, tests: Sequence[Test], *, rests_on: Sequence[str] | None = None, details: str = "",
           notes: Sequence[str] = ()) -> Verdict:
    """The one rule (module docstring). ``rests_on``: the names of the tests the claim needs (default: all); a
    test outside it is reported but never decides."""
    tests = tuple(tests)
    if not tests:
        raise InputError("a verdict needs at least one test")
    names = [t.name for t in tests]
    needed = tuple(names if rests_on is None else rests_on)
    unknown = sorted(set(needed) - set(names))
    if unknown or not needed:
        raise InputError(f"rests_on names {unknown or 'nothing'}; the tests are {names}")
    used = [t for t in tests if t.name in needed]
    missing = [t for t in used if not t.computed]
    if missing:
        status, why = Status.UNTESTABLE, "; ".join(f"{t.name} cannot be computed: {t.reason or 'no value'}"
                                                    for t in missing) + "."
    elif all(t.passes for t in used):
        status, why = Status.SUPPORTED, f"Every test passes ({', '.join(t.name for t in used)})."
    else:
        failed = [t for t in used if not t.passes]
        excluded = [t for t in failed if t.excludes]
        if excluded:
            t = excluded[0]
            status = Status.NOT_SUPPORTED
            why = (f"{t.name} fails ({_failed(t)}), and its interval ends at {fmt(t.bounds[1])}, below the effect "
                   f"it detects with {POWER:.0%} power ({fmt(t.power.mde)}).")
        else:
            t = failed[0]
            status = Status.INCONCLUSIVE
            power = ("its power was not simulated" if t.power is None else
                     t.power.sentence() if not np.isfinite(t.power.mde) else
                     f"the smallest effect it detects with {POWER:.0%} power is {fmt(t.power.mde)}")
            why = (f"{t.name} fails ({_failed(t)}), but its interval reaches {fmt(t.bounds[1])} and {power}: "
                   "this sample cannot tell a small effect from none.")
    return Verdict(claim, status, tests, why, details, needed, tuple(notes))


def _failed(t: Test) -> str:
    words = {"p": f"{p_text(t.p_value, len(t.score.null))} > {ALPHA}",
             "floor": f"effect {fmt(t.effect)} below the floor {fmt(t.floor)}",
             "interval": f"interval low end {fmt(t.bounds[0])} not above 0"}
    return ", ".join(words[k] for k, ok in t.checks().items() if not ok)


def cluster_bootstrap(effect: Callable[[np.ndarray, np.random.Generator], float], n_clusters: int, *,
                      estimate: float, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% interval of an effect from ``n_boot`` draws of ``effect(clusters, rng)``, each with ``n_clusters``
    cluster indices drawn with replacement (concepts, units or rows; ``rng`` lets ``effect`` draw a further level
    too, such as one SAE seed or one random dictionary per draw: a hierarchical bootstrap). The draws' spread is
    centred on ``estimate``, the effect on all the data: a statistic such as a fraction of units shifts when
    clusters repeat, and that shift is the resampling's, not the data's."""
    if n_clusters < 2:
        raise InputError(f"a bootstrap needs >= 2 clusters; got {n_clusters}")
    rng = np.random.default_rng(seed)
    draws = np.array([effect(rng.integers(0, n_clusters, n_clusters), rng) for _ in range(n_boot)], float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < n_boot // 2:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [0.025, 0.975]) - (draws.mean() - estimate)
    return float(lo), float(hi)


def simulate_power(test: Test, planted: Callable[[float, np.random.Generator], float], sizes: Sequence[float], *,
                   simulations: int = 20, seed: int = 0, how: str) -> Power:
    """``test``'s power on planted effects: for each planted size, ``simulations`` times, ``planted(size, rng)``
    measures the statistic on data with that effect built in (at the run's sample sizes); the rule is then
    applied with the run's own null draws, baseline and floor, and with an interval of the run's width around
    the measured effect. Returns the share detected per size against the mean measured effect. ``sizes`` ascend;
    the simulation stops after the first size detected every time."""
    if not test.computed:
        return Power((), (), simulations, how)
    lo, hi = test.bounds
    half = (hi - lo) / 2 if np.isfinite(hi - lo) else 0.0
    rng = np.random.default_rng(seed)
    effects, detected = [], []
    for size in sizes:
        hits, measured = 0, []
        for _ in range(simulations):
            value = float(planted(float(size), rng))
            trial = replace(test, score=replace(test.score, value=value), power=None, interval=None, estimate=None)
            effect = trial.effect
            trial = replace(trial, interval=(effect - half, effect + half))
            measured.append(effect)
            hits += trial.passes
        effects.append(float(np.mean(measured)))
        detected.append(hits / simulations)
        if hits == simulations:
            break
    order = np.argsort(effects)
    return Power(tuple(float(effects[i]) for i in order), tuple(float(detected[i]) for i in order), simulations,
                 how)


def shift_power(test: Test, *, simulations: int = 200, seed: int = 0, sizes: Sequence[float] | None = None) -> Power:
    """Power where the data cannot be re-made cheaply (every draw a forward pass of the model): the effect is
    planted as a shift of the statistic from its reference, with the sampling spread of the run's interval (a
    normal draw), and the rule applied with the run's own null draws, baseline and floor."""
    if not test.computed:
        return Power((), (), simulations, "shifted statistic")
    lo, hi = test.bounds
    sd = max((hi - lo) / (2 * Z95), 1e-12) if np.isfinite(hi - lo) else test.score.null_sd
    sign = 1.0 if test.score.alternative == "greater" else -1.0
    beyond_null = float(np.nanmax(sign * (test.score.null - test.reference))) if len(test.score.null) else 0.0
    top = max(test.floor, beyond_null, 0.0) + 5 * sd          # past the null's most extreme draw and the floor
    grid = np.linspace(0, top, 9)[1:] if sizes is None else np.asarray(sizes, float)

    def planted(size: float, rng: np.random.Generator) -> float:
        return test.reference + sign * (size + sd * rng.standard_normal())

    return simulate_power(test, planted, grid, simulations=simulations, seed=seed,
                          how="effect planted as a shift of the statistic, with the run's spread")
