"""The speedup model of speculative decoding (Leviathan et al. 2023), for a proposal length that varies by round.

A round that proposes K tokens, each accepted with probability alpha, yields on average
T(K) = (1 - alpha^(K+1)) / (1 - alpha) tokens and costs one verify call plus the drafter's calls (m x c target
steps). :func:`predicted_speedup` averages over the proposal lengths actually measured; :func:`break_even_alpha`
is where it crosses 1. :func:`speculative_figures` reads alpha, c, the verify cost and K off one arm's measured stats
and makes the prediction from them: the one place ``measure.generation`` and the speculative arms
(``arms.speculative``) get their figures from.

The verify call is charged what it was measured to cost (``verify_cost`` in target decode steps), not 1 step: on a
CPU, checking gamma + 1 tokens in one call costs more than one token's step (the textbook model's 1 holds when the
call is memory-bound, as on a GPU). With 1 the prediction overstated the demo pair's speedup by ~40%.
"""
from __future__ import annotations

import math
from collections import Counter


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Tokens one round yields on average when it proposes k drafts, each kept with probability alpha until the
    first rejection, plus the target's own token: ``1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha)``."""
    if k == 0:
        return 1.0
    return k + 1.0 if alpha >= 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def _proposal_hist(gamma: int, proposals) -> dict[int, float]:
    """``{k: weight}`` from None (every round proposes gamma), a per-round list of lengths or a ``{k: rounds}``
    mapping / histogram list (index k = rounds that proposed k)."""
    if proposals is None:
        return {gamma: 1.0}
    if isinstance(proposals, dict):
        hist = {int(k): float(v) for k, v in proposals.items() if v}
    else:
        hist = {int(k): float(v) for k, v in Counter(int(k) for k in proposals).items()}
    if not hist or sum(hist.values()) <= 0:
        raise ValueError("proposals is empty: pass the proposal length of at least one round")
    return hist


def predicted_speedup(alpha: float, gamma: int, c: float, verify_cost: float = 1.0, proposals=None,
                      draft_calls_per_round: float | None = None) -> float:
    """Expected decode speedup over the target alone: tokens per round over the round's cost in target decode steps.

    Derivation, for a proposal length K that varies from round to round (prompt lookup proposes fewer than gamma
    tokens, or none, whenever the context's match is short or absent; any drafter proposes fewer near
    ``max_new_tokens``). Model: each proposed token is kept with probability alpha, independently, until the first
    rejection; the round then adds the target's own token. A round that proposes k tokens yields on average
    ``T(k) = 1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha)`` tokens (``T(0) = 1``). It costs one
    verify call (``verify_cost`` target steps) plus the drafter's calls, ``c`` target steps each, ``m`` calls per
    round on average (a draft model: one per drafted token, m = E[K]; prompt lookup: one per round, m = 1).
    Over many rounds (renewal-reward) tokens per unit time -> E[T(K)] / E[cost], and plain decoding makes one token
    per step, so::

        speedup = E_K[(1 - alpha^(K+1)) / (1 - alpha)] / (m c + verify_cost)

    with E_K over the proposal lengths measured (``proposals``). With K = gamma every round and m = gamma this is the
    textbook ``(1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1))``. Plugging the mean E[K] into the textbook
    formula instead would overstate it (T is concave in K), and plugging gamma overstates it more: gamma tokens are
    proposed only when the drafter really proposes them.

    Args:
        alpha: per-token acceptance probability (accepted / tested drafts).
        gamma: proposal length when ``proposals`` is None.
        c: one drafter call / one target decode step (both without prefill).
        verify_cost: one verify call in target steps; 1 is the textbook model (true when memory-bound); pass the
            measured verify/step ratio to see how much of a gap that assumption explains on a CPU.
        proposals: the proposal length of each round (a list), or a ``{k: rounds}`` histogram; None: gamma always.
        draft_calls_per_round: m above; None: E[K] (one drafter call per drafted token).
    """
    hist = _proposal_hist(gamma, proposals)
    total = sum(hist.values())
    if any(k > 0 for k in hist) and (alpha is None or math.isnan(alpha)):
        return float("nan")
    tokens = sum(w * expected_tokens_per_round(alpha, k) for k, w in hist.items()) / total
    calls = sum(w * k for k, w in hist.items()) / total if draft_calls_per_round is None else draft_calls_per_round
    return tokens / (calls * c + verify_cost)


def break_even_alpha(gamma: int, c: float, proposals=None, draft_calls_per_round: float | None = None,
                     verify_cost: float = 1.0) -> float:
    """Smallest alpha at which speculation stops losing (predicted speedup 1); nan if none (too dear a drafter)."""
    def pred(alpha):
        return predicted_speedup(alpha, gamma, c, verify_cost, proposals, draft_calls_per_round)

    if not pred(1.0) >= 1:
        return float("nan")
    low, high = 0.0, 1.0
    for _ in range(40):   # predicted_speedup rises with alpha: bisect
        mid = (low + high) / 2
        low, high = (mid, high) if pred(mid) < 1 else (low, mid)
    return high


def speculative_figures(stats, step_seconds: float) -> dict:
    """alpha, c, the verify cost, the proposals and the prediction of one speculative arm, from its measured stats.

    Args:
        stats: the arm's :class:`~workbench.decoding.speculative.SpecStats` (merged over its prompts): decode calls
            and the time in them, prefill apart.
        step_seconds: one target decode step of the target alone (the baseline the speedup is over), prefill apart.

    c = (draft time / draft forward passes) / step; ``verify_cost_steps`` = (verify time / verify calls) / step.
    ``predicted_speedup`` charges the verify call its measured cost; ``predicted_textbook_speedup`` charges it 1 step
    (the textbook model), kept beside it to show how much of a gap that assumption makes. NaN where nothing was
    measured (alpha when no draft was ever tested).
    """
    if not step_seconds > 0 or stats.target_calls < 1:
        raise ValueError(f"step_seconds={step_seconds}, target_calls={stats.target_calls}: need a positive target "
                         "step and at least one verify call")
    rounds = len(stats.proposal_lengths) or stats.target_calls
    calls = stats.draft_calls / rounds
    c = stats.draft_seconds / max(stats.draft_calls, 1) / step_seconds
    verify = stats.target_seconds / stats.target_calls / step_seconds
    proposals = stats.proposal_lengths or None
    alpha = stats.alpha
    return {"alpha": alpha, "c": c, "verify_cost_steps": verify, "draft_calls_per_round": calls,
            "mean_proposed_per_round": stats.proposed / rounds,
            "tokens_per_target_call": stats.new_tokens / stats.target_calls,
            "predicted_speedup": predicted_speedup(alpha, stats.gamma, c, verify, proposals, calls),
            "predicted_textbook_speedup": predicted_speedup(alpha, stats.gamma, c, 1.0, proposals, calls),
            "break_even_alpha": break_even_alpha(stats.gamma, c, proposals, calls, verify)}


__all__ = ["expected_tokens_per_round", "predicted_speedup", "break_even_alpha", "speculative_figures"]
