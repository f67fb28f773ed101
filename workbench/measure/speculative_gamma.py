"""Choosing the speculative fast loop's proposal length (gamma) by timing each candidate, not by a rule of thumb.

The best gamma is a property of the pair and the machine: it trades the tokens a round yields (more with a longer
proposal, at a rate set by the acceptance alpha, which itself falls with the position in the proposal) against what the
round costs (gamma draft steps plus one verify call whose cost grows with its gamma + 1 tokens, and not smoothly on a
CPU). The model in :mod:`workbench.measure.speculative_model` explains a gamma once it is measured; it cannot tell the
verify cost of a length it has not run. So :func:`choose_gamma` builds the fast-loop engine at each candidate gamma
(compiling each, once, before any clock starts), times every candidate on the same calibration prompts in rounds whose
order rotates (``measure.interleaved``'s schedule: load drift lands on all of them alike), and picks the lowest median
decode time per new token. On the demo pair (2-core AMX Xeon) gamma 2 ran ~20-25% slower per token than gamma 3-5,
which were within the machine's noise of each other (the pick among them moved from run to run).

The calibration prompts should not be the prompts the chosen engine is then measured on (the demo benchmark takes them
from the validation split and measures on the test split), and a headline ratio is measured again on fresh timings
afterwards: the pick's own sample never becomes a headline.

Example:
    >>> choice = choose_gamma(target, draft, validation_prompts, candidates=(2, 3, 4, 5, 6))   # doctest: +SKIP
    >>> choice.gamma, choice.as_dict()["decode_ms_per_token"]
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

DEFAULT_CANDIDATES = (2, 3, 4, 5, 6)


@dataclass
class GammaChoice:
    """The chosen gamma and the figures it was chosen on.

    ``decode_ms_per_token[g]``: the median over rounds of (decode seconds / decode tokens) summed over the calibration
    prompts (prefill apart, as TPOT); ``alpha[g]``: the acceptance measured at that gamma; ``compile_seconds[g]``: the
    engine's build (compiled draft round and verify call) outside the timing.
    """

    gamma: int
    candidates: tuple
    decode_ms_per_token: dict = field(default_factory=dict)
    alpha: dict = field(default_factory=dict)
    compile_seconds: dict = field(default_factory=dict)
    prompts: int = 0
    rounds: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        """JSON-ready (gamma keys as strings, figures rounded)."""
        def rounded(values: dict, digits: int) -> dict:
            return {str(g): None if v is None else round(v, digits) for g, v in values.items()}

        return {"gamma": self.gamma, "candidates": list(self.candidates), "prompts": self.prompts,
                "rounds": self.rounds, "decode_ms_per_token": rounded(self.decode_ms_per_token, 4),
                "alpha": rounded(self.alpha, 4), "compile_seconds": rounded(self.compile_seconds, 2),
                "note": self.note}


def _check(candidates, prompts, rounds: int) -> tuple:
    candidates = tuple(candidates)
    if not candidates or any(not isinstance(g, int) or isinstance(g, bool) or g < 1 for g in candidates):
        raise ValueError(f"candidates={candidates!r}: give one or more proposal lengths >= 1, e.g. (2, 3, 4, 5, 6)")
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"candidates={candidates!r} repeats a gamma: list each once")
    if not prompts:
        raise ValueError("no calibration prompts: pass at least one [1, T] prompt (e.g. the validation split's)")
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: need at least 1 timed round per candidate")
    return candidates


def choose_gamma(target, draft, prompts: list, candidates=DEFAULT_CANDIDATES, max_new_tokens: int = 64,
                 rounds: int = 3, compile: bool = True, progress: bool = True,
                 fast_loop_options: dict | None = None) -> GammaChoice:
    """Time the speculative fast loop at each gamma in ``candidates`` on ``prompts`` and pick the fastest per token.

    Args:
        target, draft: the pair, as :class:`~workbench.decoding.fast_speculative.FastSpeculativeDecoder` takes them.
        prompts: calibration prompts, [1, T] each, on the models' device (not the ones the pick is reported on).
        candidates: the proposal lengths to try (each compiles its own draft round and verify call).
        max_new_tokens: tokens each calibration request makes (as many as the measured requests, so the rounds and
            the last round's overshoot look alike).
        rounds: timed passes over the prompts; each candidate gets one untimed pass first (the same warm-up).
        compile: as the engine's ``compile`` (False: eager static-cache loops, e.g. for tests).
        fast_loop_options: the engine's step options (``cpp_wrapper``, ``gemm_template``): time each gamma as the
            arms will run it.
    """
    import torch
    from tqdm.auto import tqdm

    from workbench.decoding.fast_speculative import FastSpeculativeDecoder
    from workbench.measure.interleaved import arm_order, round_robin

    candidates = _check(candidates, prompts, rounds)
    cache_len = max(p.shape[1] for p in prompts) + max_new_tokens
    engines = {}
    for gamma in tqdm(candidates, desc="gamma candidates: compiling", disable=not progress):
        engines[gamma] = FastSpeculativeDecoder(target, draft, gamma=gamma, max_cache_len=cache_len, compile=compile,
                                                **(fast_loop_options or {}))

    def one_pass(engine) -> tuple:
        """Every calibration prompt once: (decode seconds, decode tokens, drafts accepted, drafts proposed)."""
        seconds = tokens = accepted = proposed = 0
        for prompt in prompts:
            _, stats = engine.generate(prompt, max_new_tokens)
            seconds += stats.decode_seconds
            tokens += stats.new_tokens - 1   # the first new token is the prefill's
            accepted, proposed = accepted + stats.accepted, proposed + stats.proposed
        return seconds, tokens, accepted, proposed

    arms = {gamma: (lambda engine=engine: one_pass(engine)) for gamma, engine in engines.items()}
    samples: dict = {g: [] for g in candidates}
    alpha_counts: dict = {g: [0, 0] for g in candidates}   # accepted, proposed (timed rounds)
    with torch.inference_mode():
        for arm in arms.values():   # compile + the same untimed warm-up pass for each
            arm()
        schedule = round_robin(arms, rounds, order=lambda r: arm_order(candidates, r))
        for _, gamma, (seconds, tokens, accepted, proposed) in tqdm(schedule, total=rounds * len(arms),
                                                                    desc="gamma candidates: timing",
                                                                    disable=not progress):
            samples[gamma].append(seconds / max(tokens, 1) * 1e3)
            alpha_counts[gamma][0] += accepted
            alpha_counts[gamma][1] += proposed
    per_token = {g: statistics.median(v) for g, v in samples.items()}
    best = min(candidates, key=lambda g: per_token[g])
    unsupported = [g for g, e in engines.items() if not e.supported or not e.compiled]
    note = (f"lowest median decode ms per token over {rounds} rounds of {len(prompts)} calibration prompts, "
            f"{max_new_tokens} new tokens each, candidates in rotating order")
    if compile and unsupported:
        note += f"; not compiled at gamma {unsupported}: {engines[unsupported[0]].reason}"
    return GammaChoice(best, candidates, per_token,
                       {g: a / p if p else None for g, (a, p) in alpha_counts.items()},
                       {g: e.compile_seconds for g, e in engines.items()}, len(prompts), rounds, note)


__all__ = ["choose_gamma", "GammaChoice", "DEFAULT_CANDIDATES"]
