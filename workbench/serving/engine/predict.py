"""Served goodput predicted from in-process step times: a seeded discrete-event simulation of continuous batching.

Input: the prefill time of one prompt (TTFT at batch 1) and the decode step time at each batch size
(:class:`workbench.measure.step_times.StepTimes`, measured in-process on the exported checkpoint by
:mod:`workbench.serving.engine.inprocess`). The simulated engine, one iteration after another:

1. **Admit**: requests that have arrived wait in a FIFO queue; at the start of an iteration as many as there are free
   slots (``max_num_seqs`` minus the running ones) are admitted, and, when ``max_num_batched_tokens`` is given, only as
   many whole prompts as fit that token budget beside one token per running sequence (at least one per iteration, so
   a prompt longer than the budget still goes in).
2. **Run**: the iteration takes ``k x prefill_s`` for the k prompts admitted plus one decode step ``tpot(B)`` for the
   B sequences already running (interpolated between the measured batch sizes:
   :meth:`~workbench.measure.step_times.StepTimes.tpot_at`). When both kinds run, they run as vLLM runs them, in one
   forward pass (its scheduler puts the new prompts and the running sequences' next tokens in one batch): the B
   decode tokens then cost what B more prompt tokens cost, ``B x prefill_s / prompt_tokens``, never more than
   ``tpot(B)``. Every admitted prompt emits its first token at the iteration's end, every running sequence its next
   one; a sequence that has its ``new_tokens`` leaves.
3. An idle engine waits for the next arrival.

Simplifications, each a source of prediction error the report quotes rather than hides: vLLM's chunked prefill
splits a long prompt across iterations (here a prompt is never split); a fused iteration's decode tokens are priced
as prompt tokens, leaving out their attention over the context they carry; the per-request HTTP, tokenising and
streaming costs of the server and the client are not modelled; the in-process step times come from the workbench's
own kernels (HF ``generate``), not vLLM's. The last one is measured away where the engine was seen idle:
:func:`calibrated` scales the step times to one idle request's TTFT and ITL on the predicted engine (no load) and
to a burst of ``max_num_seqs`` requests sent at once (the engine's step at its widest batch); the in-process
measurement keeps the curve's shape between the two.

Arrivals are the very schedule the served climb sends (:func:`workbench.serving.load.schedule.schedule`, Poisson
given n, seed = the point's index), with the served point's request count
(:func:`~workbench.serving.engine.search.point_requests`). A point passes as the served one does:
no failures and at least ``attainment`` of requests with TTFT <= ``slo_ttft_ms`` and their mean inter-token
latency (AIPerf's per-request ITL) <= ``slo_itl_ms`` (:func:`workbench.serving.load.sweep.slo_outcome`).

**Predicted goodput** (:func:`predict_goodput`) is the served search's own climb
(:func:`workbench.serving.engine.search.climb`: doubling from the start rate, halving at most twice, one 1.41x
refinement) run on the simulator from the same start rate as the served climb. The served goodput is the highest
passing rung of that ladder, not a continuous figure, so a prediction that is to be compared with it must answer the
same question: a continuous answer would differ from the served figure by up to the ladder's step (41-100%) even when
the model were perfect. The continuous answer, found by bisection on the same point construction
(:func:`bisect_goodput`), is reported beside it, so a reader sees where between two rungs the predicted limit lies.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field

from workbench.measure.step_times import StepTimes
from workbench.serving.engine.search import MIN_REQUESTS, point_requests


def simulate(times: StepTimes, offsets, new_tokens: int, max_num_seqs: int, prompt_tokens: int | None = None,
             max_num_batched_tokens: int | None = None) -> list[tuple]:
    """Run the engine model (module doc) on arrivals at ``offsets`` (seconds, ascending). Returns one request per
    arrival as :func:`workbench.measure.request_metrics.request_metrics` reads it: ``(arrival, emit_times, counts)``."""
    if new_tokens < 2 or max_num_seqs < 1:
        raise ValueError(f"new tokens ({new_tokens}) >= 2 and max_num_seqs ({max_num_seqs}) >= 1 are needed")
    if max_num_batched_tokens is not None and (prompt_tokens is None or prompt_tokens < 1):
        raise ValueError("a token budget (max_num_batched_tokens) needs the prompt length (prompt_tokens >= 1)")
    arrivals = [float(t) for t in offsets]
    if any(b < a for a, b in zip(arrivals, arrivals[1:])) or (arrivals and arrivals[0] < 0):
        raise ValueError("arrival offsets must be >= 0 and ascending (a schedule from serving.load.schedule)")
    n = len(arrivals)
    prompt_len = prompt_tokens or times.prompt_tokens
    per_prompt_token = times.prefill_s / prompt_len if prompt_len else None   # None: a mixed iteration costs the sum
    emits: list[list[float]] = [[] for _ in range(n)]
    waiting: deque = deque()
    running: list[int] = []
    clock, nxt, done = 0.0, 0, 0
    while done < n:
        while nxt < n and arrivals[nxt] <= clock:
            waiting.append(nxt)
            nxt += 1
        if not running and not waiting:
            clock = arrivals[nxt]
            continue
        admit: list[int] = []
        budget = (max_num_batched_tokens - len(running)) if max_num_batched_tokens is not None else None
        while waiting and len(running) + len(admit) < max_num_seqs:
            if admit and budget is not None and (len(admit) + 1) * prompt_tokens > budget:
                break
            admit.append(waiting.popleft())
        decoding = len(running)
        step = times.tpot_at(decoding) if decoding else 0.0
        if admit and decoding and per_prompt_token is not None:   # one fused forward pass (module doc)
            step = min(step, decoding * per_prompt_token)
        clock += len(admit) * times.prefill_s + step
        still = []
        for i in running + admit:
            emits[i].append(clock)
            if len(emits[i]) >= new_tokens:
                done += 1
            else:
                still.append(i)
        running = still
    return [(arrivals[i], emits[i], [1] * new_tokens) for i in range(n)]


def simulate_point(times: StepTimes, rate: float, seed: int, new_tokens: int, max_num_seqs: int,
                   slo_ttft_ms: float, slo_itl_ms: float, attainment: float = 0.99, point_s: float = 8.0,
                   prompt_tokens: int | None = None, max_num_batched_tokens: int | None = None,
                   min_requests: int = MIN_REQUESTS) -> dict:
    """One simulated load point, as a row with the served row's SLO columns (``slo_attainment``, ``slo_outcome``)."""
    from workbench.measure.request_metrics import per_request_latency, request_metrics, share_within
    from workbench.serving.load.schedule import schedule
    from workbench.serving.load.sweep import slo_outcome

    n = point_requests(rate, point_s, min_requests)
    requests = simulate(times, schedule(rate, n, "poisson", seed=seed), new_tokens, max_num_seqs, prompt_tokens,
                        max_num_batched_tokens)
    share = share_within(per_request_latency(requests), n, slo_ttft_ms, slo_itl_ms)   # the own client's rule
    outcome = slo_outcome(True, 0, share + 1e-9, attainment)
    m = request_metrics(requests)
    keep = ("ttft_ms_p50", "ttft_ms_mean", "itl_ms_p50", "itl_ms_mean", "tpot_ms_p50", "e2e_ms_p50",
            "output_tokens_per_s_aggregate")
    return {"offered_rate_per_s": rate, "n_requests": n, **{k: m.get(k) for k in keep},
            "ttft_ms_max": round(max(e[0] - s for s, e, _ in requests) * 1e3, 3),
            "slo_attainment": round(share, 4), "slo_outcome": outcome, "meets_slo": outcome == "pass"}


@dataclass
class GoodputPrediction:
    """Predicted goodput on the served climb's ladder (``goodput_per_s``, the figure compared with the served one),
    the continuous limit by bisection (``bisect_per_s``), the simulated climb's rows and what they came from."""

    goodput_per_s: float | None
    bisect_per_s: float | None
    start_rate: float
    rows: list = field(default_factory=list)
    step_times: dict = field(default_factory=dict)

    def error_pct(self, served_per_s: float | None) -> float | None:
        """(predicted - served) / served x 100; None when either is missing."""
        return prediction_error_pct(self.goodput_per_s, served_per_s)

    def bisect_error_pct(self, served_per_s: float | None) -> float | None:
        """The continuous (bisection) figure's error against the served goodput, for reference."""
        return prediction_error_pct(self.bisect_per_s, served_per_s)

    def as_dict(self) -> dict:
        return {"predicted_goodput_per_s": self.goodput_per_s, "predicted_goodput_bisect_per_s": self.bisect_per_s,
                "start_rate_per_s": self.start_rate, "step_times": self.step_times,
                "points": [{k: r[k] for k in ("offered_rate_per_s", "n_requests", "ttft_ms_p50", "ttft_ms_max",
                                              "itl_ms_p50", "slo_attainment", "slo_outcome")} for r in self.rows]}


def calibrated(times: StepTimes, idle_ttft_ms: float, idle_itl_ms: float, burst_size: int | None = None,
               burst_itl_ms: float | None = None) -> StepTimes:
    """``times`` scaled to the served engine it predicts: the prefill becomes the served idle TTFT p50, the batch-1
    decode step the served idle ITL p50 and, given a burst point (``burst_size`` requests sent at once to the idle
    engine, the p50 of their inter-token gaps ``burst_itl_ms``), the step at that batch the burst's ITL.

    Why: the in-process step times come from the workbench's kernels, not the engine's, and the two differ by a
    factor (in-process over served, 134M Llama here: bf16 1.05-1.15x on prefill and 1.5-1.65x on the batch-1 step;
    int8 3.6x on prefill) that put every uncalibrated prediction one or two rungs of the climb's ladder below the
    served figure. They also differ in how the step grows with the batch: on AVX2 (134M Llama, fp32) HF
    ``generate``'s step took 2.5x its batch-1 time at batch 8, vLLM's 1.65-1.77x (bursts of 8), and with the batch-1
    factor alone the prediction read 0.153/s against a served 0.434/s (-65%). The burst measures the engine's own
    growth at the top batch; between batch 1 and the burst's batch the in-process curve keeps its shape, stretched to
    meet both served points. Without a burst the batch-1 factor is taken for every batch size (the simplification
    then reported in the notes)."""
    if not idle_ttft_ms or idle_ttft_ms <= 0 or not idle_itl_ms or idle_itl_ms <= 0:
        raise ValueError(f"served idle TTFT {idle_ttft_ms} ms / ITL {idle_itl_ms} ms must both be > 0: measure the "
                         "engine idle (serving.engine.search.idle_latency) before calibrating to it")
    one = times.tpot_at(1)
    if burst_size and burst_size > 1 and burst_itl_ms and burst_itl_ms > 0:
        served_growth = max(1.0, burst_itl_ms / idle_itl_ms)   # a burst read below the idle step is noise: flat
        own_growth = times.tpot_at(burst_size) / one
        tpot = {b: idle_itl_ms / 1e3 * _stretched_growth(t / one, own_growth, served_growth, b, burst_size)
                for b, t in times.tpot_s.items()}
        how = (f"decode steps: batch 1 = idle ITL p50 {idle_itl_ms} ms, batch {burst_size} = burst ITL p50 "
               f"{burst_itl_ms} ms (x{served_growth:.2f}; in-process x{own_growth:.2f}), the in-process shape between")
    else:
        factor = idle_itl_ms / 1e3 / one
        tpot = {b: t * factor for b, t in times.tpot_s.items()}
        how = f"decode steps x{factor:.3f} (idle ITL p50 {idle_itl_ms} ms / in-process batch-1 step)"
    return dataclasses.replace(times, prefill_s=idle_ttft_ms / 1e3, tpot_s=tpot,
                               notes=(times.notes + "; " if times.notes else "") +
                               f"calibrated to the served idle point: prefill = idle TTFT p50 {idle_ttft_ms} ms, {how}")


def scaled(times: StepTimes, factor: float) -> StepTimes:
    """``times`` with the prefill and every decode step multiplied by ``factor`` (the prediction's sensitivity band:
    how far the predicted limit moves when the step times are off by a few percent)."""
    if factor <= 0:
        raise ValueError(f"scale factor {factor} must be > 0")
    return dataclasses.replace(times, prefill_s=times.prefill_s * factor,
                               tpot_s={b: t * factor for b, t in times.tpot_s.items()},
                               notes=(times.notes + "; " if times.notes else "") + f"x{factor:g}")


def _stretched_growth(growth: float, own_growth: float, served_growth: float, batch: int, burst_size: int) -> float:
    """Step time at ``batch`` over batch 1's on the engine, from the in-process ``growth`` at that batch (step over
    batch 1's step): stretched linearly so that it is 1 at batch 1 and ``served_growth`` where the in-process curve
    reads ``own_growth`` (at ``burst_size``); a flat in-process curve gives a straight line between the two. Never
    below 1."""
    if batch <= 1:
        return 1.0
    if own_growth > 1.0:
        return max(1.0, 1.0 + (growth - 1.0) * (served_growth - 1.0) / (own_growth - 1.0))
    return 1.0 + (served_growth - 1.0) * (batch - 1) / (burst_size - 1)


def prediction_error_pct(predicted: float | None, served: float | None) -> float | None:
    """(predicted - served) / served x 100, rounded to 0.1; None when either is missing or served is 0."""
    if predicted is None or not served:
        return None
    return round(100.0 * (predicted - served) / served, 1)


def _check_slo(slo_ttft_ms: float, slo_itl_ms: float, attainment: float) -> None:
    if slo_ttft_ms is None or slo_itl_ms is None or slo_ttft_ms <= 0 or slo_itl_ms <= 0 or not 0 < attainment <= 1:
        raise ValueError(f"SLO TTFT {slo_ttft_ms} ms / ITL {slo_itl_ms} ms must both be > 0 and attainment "
                         f"({attainment}) in (0, 1]: pass the SLO the served search used (its slo_ttft_ms, slo_itl_ms)")


def idle_start_rate(times: StepTimes, new_tokens: int) -> float:
    """The served search's default start rate, from the step times: 1 / one request's e2e on an idle engine."""
    e2e = times.prefill_s + (new_tokens - 1) * times.tpot_at(1)
    return max(0.05, round(1.0 / e2e, 3))


def bisect_goodput(passes, start_rate: float, rel_tol: float = 0.01, max_steps: int = 60) -> float | None:
    """Highest rate for which ``passes(rate)`` holds, to ``rel_tol``: doubling (or halving) from ``start_rate`` to a
    pass / miss bracket, then bisection in it. None when nothing passes down to ``start_rate / 2**20``."""
    lo = hi = None
    rate = start_rate
    for _ in range(max_steps):
        if passes(rate):
            lo = rate
            if hi is not None:
                break
            rate *= 2
        else:
            hi = rate
            if lo is not None:
                break
            if rate < start_rate / 2 ** 20:
                return None
            rate /= 2
    if lo is None:
        return None
    if hi is None:
        return round(lo, 4)   # passes at every rate tried: the figure is a lower bound
    for _ in range(max_steps):
        if (hi - lo) / lo <= rel_tol:
            break
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return round(lo, 4)


def predict_goodput(times: StepTimes, new_tokens: int, max_num_seqs: int, slo_ttft_ms: float, slo_itl_ms: float,
                    attainment: float = 0.99, start_rate: float | None = None, point_s: float = 8.0,
                    max_points: int = 5, prompt_tokens: int | None = None,
                    max_num_batched_tokens: int | None = None, min_requests: int = MIN_REQUESTS,
                    max_halvings: int = 2) -> GoodputPrediction:
    """Predicted goodput of an engine with ``max_num_seqs`` slots from ``times`` (module doc).

    ``start_rate``: the served climb's first rate (``EngineCandidate.start_rate``), so both climb the same ladder;
    None: the served search's default start, 1 / the predicted idle e2e. ``point_s`` / ``max_points``: the served
    search's, and ``min_requests`` / ``max_halvings`` the served climb's (``EngineCandidate.min_requests`` /
    ``halvings``). ``prompt_tokens`` is needed
    only with a ``max_num_batched_tokens`` budget."""
    from workbench.serving.engine.search import climb

    _check_slo(slo_ttft_ms, slo_itl_ms, attainment)
    if point_s <= 0 or max_points < 2:
        raise ValueError(f"point_s ({point_s}) > 0 and max_points ({max_points}) >= 2 are needed")
    if start_rate is not None and start_rate <= 0:
        raise ValueError(f"start rate {start_rate}/s must be > 0 (or None: 1 / the predicted idle e2e)")
    start = start_rate or idle_start_rate(times, new_tokens)
    common = dict(new_tokens=new_tokens, max_num_seqs=max_num_seqs, slo_ttft_ms=slo_ttft_ms, slo_itl_ms=slo_itl_ms,
                  attainment=attainment, point_s=point_s, prompt_tokens=prompt_tokens,
                  max_num_batched_tokens=max_num_batched_tokens, min_requests=min_requests)
    rows, good = climb(lambda rate, k: simulate_point(times, rate, k, **common), start, max_points, max_halvings)
    bisect = bisect_goodput(lambda rate: simulate_point(times, rate, 0, **common)["meets_slo"], start)
    return GoodputPrediction(good, bisect, start, rows, times.as_dict())


__all__ = ["simulate", "simulate_point", "predict_goodput", "bisect_goodput", "idle_start_rate", "prediction_error_pct",
           "calibrated", "scaled", "GoodputPrediction"]
