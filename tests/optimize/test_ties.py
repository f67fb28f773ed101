"""Contenders too close to call on cost (workbench.optimize.ties): the interval comes from the side-by-side run's
paired rounds, and a tie goes to the arm with the clearly smaller quality drop."""
import numpy as np
import pytest

from workbench.optimize.ties import COST_EQUIVALENCE_MARGIN, break_tie, cost_ratio, equivalent, round_costs, undecided


def test_round_costs_average_each_rounds_calls_per_unit():
    # 3 calls per turn, 2 rounds (a 7th, incomplete round is left out), 4 units per call
    costs = round_costs([4, 8, 12, 40, 40, 40, 99], calls_per_turn=3, units_per_call=4)
    assert costs.tolist() == [2.0, 10.0]


def test_paired_rounds_see_a_small_gap_through_a_large_drift():
    rng = np.random.default_rng(0)
    drift = np.exp(rng.normal(0, 0.3, 30))            # the machine's speed, round by round (~30%: as measured here)
    cheap = 10 * drift * (1 + rng.normal(0, 0.01, 30))
    dearer = 10.4 * drift * (1 + rng.normal(0, 0.01, 30))
    r, low, high = cost_ratio(dearer, cheap)
    assert 1.0 < low < r < high and r == pytest.approx(1.04, abs=0.01)    # 4% apart, interval above 1: not a tie
    noisy = 10.4 * drift * (1 + rng.normal(0, 0.2, 30))                    # the same gap under per-call noise
    assert cost_ratio(noisy, cheap)[1] <= 1.0                              # ... is a tie
    assert cost_ratio(dearer[:2], cheap[:2]) is None                       # too few rounds for an interval


def test_a_tie_goes_to_the_clearly_better_quality_otherwise_the_cheapest_stays():
    order = ["int4", "int8", "fp32"]
    drops = {"int4": [0.30, 0.45], "int8": [-0.03, 0.06], "fp32": [0.0, 0.0]}
    tied = {"int8": [1.01, 0.98, 1.04], "fp32": [1.30, 1.20, 1.40]}
    winner, why = break_tie(order, tied, drops)
    assert winner == "int8" and "tied on cost with int4" in why and "[-0.03, 0.06] vs [0.30, 0.45]" in why
    assert "within 5% of 1" in why
    # fp32 has the smallest drop, but it is not tied (its interval stays above 1)
    assert break_tie(order, {"int8": [1.04, 1.01, 1.10], "fp32": tied["fp32"]}, drops) == ("int4", None)
    # an interval that reaches 1 but runs well past the margin is a run that could not tell them apart, not a tie:
    # the cheaper point estimate stays (the demo LM's int4 vs fp32 over 12 rounds)
    assert break_tie(order, {"int8": [1.109, 0.978, 1.196]}, drops) == ("int4", None)
    # tied, but the quality intervals overlap: no clear reason to pay more
    assert break_tie(order, tied, {**drops, "int8": [0.10, 0.35]}) == ("int4", None)
    # without the cheapest's quality (not measured) or the contender's ratio, nothing is broken
    assert break_tie(order, tied, {**drops, "int4": None}) == ("int4", None)
    assert break_tie(order, {"int8": None}, drops) == ("int4", None)


def test_equivalent_within_the_margin_and_undecided_until_clearly_past_it():
    assert COST_EQUIVALENCE_MARGIN == 0.05
    assert equivalent([1.02, 0.99, 1.049]) and not equivalent([1.02, 0.94, 1.04]) and not equivalent(None)
    assert not equivalent([1.109, 0.978, 1.196])
    # worth a longer run while the interval's low end is within the margin; not when it is clearly past it
    assert undecided([1.109, 0.978, 1.196]) and undecided([1.08, 1.04, 1.12])
    assert not undecided([1.10, 1.06, 1.14]) and not undecided(None)
