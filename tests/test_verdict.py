"""The one rule (analysis.verdict.decide) on hand-made tests: each status, and the power it needs to say "no"."""

from __future__ import annotations

import numpy as np
import pytest

from mmfeatures.analysis.stats import Score
from mmfeatures.analysis.verdict import Power, Status, decide
from mmfeatures.analysis.verdict import Test as VTest
from mmfeatures.errors import InputError

NULL = np.zeros(19)           # p = 1/20 for any value above 0, 1 for 0


def make(value: float, interval: tuple[float, float], detected: tuple[float, ...] = (0.1, 0.9, 1.0),
         name: str = "effect") -> VTest:
    power = Power(effects=(0.01, 0.02, 0.04), detected=detected, simulations=10, how="planted")
    return VTest(name, Score(name, value, NULL), baseline=0.0, floor=0.01, interval=interval, power=power)


def test_every_test_passing_is_supported():
    assert decide("c", [make(0.05, (0.03, 0.07))]).status is Status.SUPPORTED


def test_a_failure_whose_interval_ends_below_the_mde_is_not_supported():
    verdict = decide("c", [make(0.0, (-0.005, 0.005))])                       # MDE 0.02: an effect it would see
    assert verdict.status is Status.NOT_SUPPORTED and "below the effect it detects" in verdict.why


def test_a_failure_that_cannot_exclude_a_detectable_effect_is_inconclusive():
    assert decide("c", [make(0.005, (-0.01, 0.03))]).status is Status.INCONCLUSIVE


def test_no_detectable_planted_effect_makes_a_failure_inconclusive_never_not_supported():
    """With no size detected in 80% of simulations the MDE is infinite: the test has no power, so it cannot say no."""
    verdict = decide("c", [make(0.0, (0.0, 0.0), detected=(0.0, 0.1, 0.3))])
    assert verdict.status is Status.INCONCLUSIVE and "no planted effect up to 0.04" in verdict.why


def test_one_failing_test_decides_and_a_test_outside_rests_on_does_not():
    good, bad = make(0.05, (0.03, 0.07), name="a"), make(0.0, (-0.005, 0.005), name="b")
    assert decide("c", [good, bad]).status is Status.NOT_SUPPORTED
    assert decide("c", [good, bad], rests_on=["a"]).status is Status.SUPPORTED
    with pytest.raises(InputError, match="rests_on names"):
        decide("c", [good], rests_on=["z"])


def test_a_test_without_a_score_cannot_be_tested():
    missing = VTest("overlap", None, reason="one sentence per concept")
    verdict = decide("c", [make(0.05, (0.03, 0.07)), missing])
    assert verdict.status is Status.UNTESTABLE and "one sentence per concept" in verdict.why
