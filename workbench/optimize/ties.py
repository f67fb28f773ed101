"""Contenders too close to call on cost: a tie, broken by quality.

The side-by-side run (``search.head_to_head``) prices each contender at its SLO batch in one interleaved run. Two
arms a few percent apart can swap places between two such runs (ORT int8 and int4 on the small demo LM read 4.5% one
way and 9.5% the other), so a cost gap that the run's own noise covers is not a reason to take the arm with the larger
quality drop. The run's rounds pair the arms (each round times every arm once, in turn, at one moment of the
machine), so the noise is read from the run itself: the paired bootstrap interval of the cost ratio over rounds.

Rule: a contender is tied with the cheapest when their costs are equivalent: its cost ratio's interval lies within
``COST_EQUIVALENCE_MARGIN`` of 1 on both sides. An interval that merely reaches 1 is not a tie: it says the run could
not tell them apart, not that they cost the same (on the demo LM, int4 read 11% cheaper than fp32 over 12 paired
rounds, interval [0.98, 1.20]: taking fp32 for its quality cost the benchmark an 11% regret). Then the cheaper point
estimate is the better bet on cost, and cost is what the search minimises among eligible arms. Among the cheapest
and its ties, an arm whose quality-drop interval lies wholly below the cheapest's (the one eligibility rule's
quantity, its upper end, below the cheapest's lower end) is clearly better on quality and wins; otherwise the
cheapest stays. A contender that may be within the margin (:func:`undecided`) is timed again in a longer run of its
own before the rule is applied (``search._settle_tie``).
"""
from __future__ import annotations

import numpy as np

# Costs within 5% of each other at both ends of the interval are the same cost for a serving decision: a user gives
# that much for a clearly smaller quality drop; past it, the cheaper arm stays.
COST_EQUIVALENCE_MARGIN = 0.05


def round_costs(samples_ms, calls_per_turn: int, units_per_call: float) -> np.ndarray:
    """Per-round cost proxy of one arm: the mean ms of its calls in each round / what one call serves."""
    samples = np.asarray(samples_ms, dtype=np.float64)
    rounds = len(samples) // calls_per_turn
    return samples[:rounds * calls_per_turn].reshape(rounds, calls_per_turn).mean(axis=1) / units_per_call


def cost_ratio(arm_rounds: np.ndarray, cheapest_rounds: np.ndarray, seed: int = 0) -> list[float] | None:
    """[ratio, low, high]: the arm's median round cost / the cheapest's, with the paired bootstrap 95% interval
    over rounds; None with fewer than 3 paired rounds (no interval worth the name)."""
    from workbench.util.stats import paired_bootstrap_ratio

    n = min(len(arm_rounds), len(cheapest_rounds))
    if n < 3:
        return None
    ratio, low, high = paired_bootstrap_ratio(arm_rounds[:n], cheapest_rounds[:n], statistic=np.median, seed=seed)
    return [round(ratio, 4), round(low, 4), round(high, 4)]


def undecided(ratio) -> bool:
    """A contender's cost ratio ([ratio, low, high], or None) that a longer run might still show within the margin:
    its interval's low end is not clearly past it."""
    return bool(ratio) and ratio[1] <= 1.0 + COST_EQUIVALENCE_MARGIN


def equivalent(ratio) -> bool:
    """A cost ratio whose interval lies within :data:`COST_EQUIVALENCE_MARGIN` of 1 on both sides."""
    return bool(ratio) and 1.0 / (1.0 + COST_EQUIVALENCE_MARGIN) <= ratio[1] and \
        ratio[2] <= 1.0 + COST_EQUIVALENCE_MARGIN


def break_tie(order: list[str], ratios: dict, drop_cis: dict) -> tuple[str, str | None]:
    """(winner, why) from contenders sorted by cost (``order[0]`` the cheapest); ``ratios[name]``: its
    :func:`cost_ratio` to the cheapest (None: not known); ``drop_cis[name]``: its quality-drop interval [low, high]
    (None: not measured). ``why`` is None when the cheapest stays."""
    cheapest = order[0]
    base = drop_cis.get(cheapest)
    if not base:
        return cheapest, None
    tied = [n for n in order[1:] if equivalent(ratios.get(n)) and drop_cis.get(n)]
    better = [n for n in tied if drop_cis[n][1] < base[0]]
    if not better:
        return cheapest, None
    winner = min(better, key=lambda n: drop_cis[n][1])
    r, lo, hi = ratios[winner]
    return winner, (f"tied on cost with {cheapest} side by side (cost ratio {r:.3f}, 95% CI [{lo:.3f}, {hi:.3f}] "
                    f"over the run's rounds, within {COST_EQUIVALENCE_MARGIN:.0%} of 1) and a clearly smaller "
                    f"quality drop (CI [{drop_cis[winner][0]:.2f}, {drop_cis[winner][1]:.2f}] vs "
                    f"[{base[0]:.2f}, {base[1]:.2f}])")


__all__ = ["round_costs", "cost_ratio", "break_tie", "undecided", "equivalent", "COST_EQUIVALENCE_MARGIN"]
