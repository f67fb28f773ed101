"""Per-request generation metrics, as vLLM's benchmark and NVIDIA AIPerf define them; pure arithmetic on clock times.

A request is ``(start, emit_times, emit_counts)``: ``start`` when the request began (before its prefill),
``emit_times[i]`` when the i-th emission reached the host and ``emit_counts[i]`` how many output tokens it carried
(1 for plain decoding; 1 + accepted drafts for a speculative round). An optional fourth element ``sequences``
(default 1) is the number of prompts one batched call carried: they share one clock, so the call is ONE sample of
TTFT / TPOT / ITL / e2e (``n_requests`` counts calls, ``n_sequences`` the prompts), while every sequence's tokens
count in ``output_tokens`` and the aggregate rate. Copying a batch's times B times would fake the sample count.

Definitions (all per request, then summarised over requests):

- **TTFT** (time to first token) = ``emit_times[0] - start``: the prefill plus the first token.
- **e2e latency** = ``emit_times[-1] - start``.
- **TPOT** (time per output token) = ``(e2e - TTFT) / (output tokens - 1)``; undefined for a 1-token output.
- **ITL** (inter-token latency): every gap between consecutive emissions, per token it delivered. A gap that
  delivers a chunk of k tokens (a speculative round that kept k - 1 drafts) contributes k samples of ``gap / k``:
  k tokens over one gap, not one slow token followed by k - 1 instant ones (which would put zeros in the
  distribution and make p50 look better than any user sees). The ITL mean over tokens after the first emission is
  then ``TPOT`` when the first emission is 1 token.
- **output tokens/s per request** = ``output tokens / e2e``; **aggregate output tokens/s** = all output tokens /
  the time any request was in flight (the union of their [start, end] intervals, so requests run one after another,
  interleaved with other arms, or batched together are all counted right).

Percentiles follow :mod:`workbench.measure.timing`'s one rule: p99 needs 200 samples, else the column is None and
``<column>_note`` says why ("n=8 < 200").
"""
from __future__ import annotations

from typing import Sequence

Request = tuple  # (start: float, emit_times: Sequence[float], emit_counts: Sequence[int])

METRIC_PERCENTILES = ("p50", "p99")


def _check(request) -> tuple[float, list, list, int]:
    start, times, counts, *rest = request
    times, counts = list(times), list(counts)
    sequences = int(rest[0]) if rest else 1
    if sequences < 1:
        raise ValueError(f"a request carries >= 1 sequence, got {sequences}")
    if not times or len(times) != len(counts):
        raise ValueError(f"a request needs one token count per emission time and at least one emission, got "
                         f"{len(times)} times and {len(counts)} counts")
    if any(c < 1 for c in counts):
        raise ValueError(f"emission token counts must be >= 1, got {counts}: drop emissions that carried no token")
    if times[0] < start or any(b < a for a, b in zip(times, times[1:])):
        raise ValueError("emission times must not precede the start or each other: the clock went backwards")
    return float(start), times, counts, sequences


def itl_samples(times: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Inter-token latencies (seconds) after the first emission: gap / k, k times, for a gap delivering k tokens."""
    out: list[float] = []
    for prev, now, k in zip(times, times[1:], counts[1:]):
        out.extend([(now - prev) / k] * k)
    return out


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals: the time at least one request was in flight."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _summary(name: str, values_s: list[float], out: dict) -> None:
    """``<name>_ms_mean`` and the percentile columns (ms), None with a note where samples are too few."""
    import numpy as np

    from workbench.measure.timing import enough_samples, samples_note

    out[f"{name}_ms_mean"] = round(float(np.mean(values_s)) * 1e3, 4) if values_s else None
    for p in METRIC_PERCENTILES:
        column = f"{name}_ms_{p}"
        if values_s and enough_samples(p, len(values_s)):
            out[column] = round(float(np.percentile(values_s, float(p[1:]))) * 1e3, 4)
        else:
            out[column] = None
            out[f"{column}_note"] = samples_note(p, len(values_s))


def request_metrics(requests: Sequence[Request]) -> dict:
    """The request-metric columns of a row from its requests (see the module doc for the definitions).

    Returns ``ttft_ms_*``, ``tpot_ms_*``, ``itl_ms_*``, ``e2e_ms_*`` (mean, p50, p99), ``output_tokens_per_s_request``
    (mean over requests, per sequence), ``output_tokens_per_s_aggregate`` (every sequence's tokens over the busy
    time), ``n_requests`` (timing samples: calls), ``n_sequences``, ``output_tokens`` and ``itl_samples``.

    Example:
        >>> m = request_metrics([(0.0, [0.5, 0.6, 0.7], [1, 1, 1])])
        >>> m["ttft_ms_mean"], m["tpot_ms_mean"], m["output_tokens"]
        (500.0, 100.0, 3)
    """
    if not requests:
        raise ValueError("no requests to summarise: run at least one generation")
    ttft, tpot, e2e, itl, rates, spans, tokens, sequences = [], [], [], [], [], [], 0, 0
    for request in requests:
        start, times, counts, batch = _check(request)
        n = sum(counts)
        first, last = times[0] - start, times[-1] - start
        ttft.append(first)
        e2e.append(last)
        if n > 1:
            tpot.append((last - first) / (n - 1))
        itl.extend(itl_samples(times, counts))
        if last > 0:
            rates.append(n / last)
        spans.append((start, times[-1]))
        tokens += n * batch
        sequences += batch
    out: dict = {"n_requests": len(requests), "n_sequences": sequences, "output_tokens": tokens,
                 "itl_samples": len(itl)}
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        _summary(name, values, out)
    busy = busy_seconds(spans)
    out["output_tokens_per_s_request"] = round(sum(rates) / len(rates), 3) if rates else None
    out["output_tokens_per_s_aggregate"] = round(tokens / busy, 3) if busy > 0 else None
    return out


def per_request_latency(requests: Sequence[Request]) -> list[tuple[float, float | None]]:
    """``(TTFT ms, mean ITL ms)`` of each request: the mean inter-token latency is AIPerf's per-request ITL,
    (last emission - first) / (tokens - 1); None for a one-token answer."""
    out = []
    for request in requests:
        start, times, counts, _ = _check(request)
        n = sum(counts)
        out.append(((times[0] - start) * 1e3, (times[-1] - times[0]) * 1e3 / (n - 1) if n > 1 else None))
    return out


def share_within(per_request: Sequence[tuple[float, float | None]], n_sent: int, slo_ttft_ms: float,
                 slo_itl_ms: float) -> float:
    """Share of ``n_sent`` requests whose TTFT and mean ITL (:func:`per_request_latency`) are within the SLOs;
    requests sent but missing from ``per_request`` (failed) count as misses."""
    hits = sum(t <= slo_ttft_ms and (i is None or i <= slo_itl_ms) for t, i in per_request)
    return hits / n_sent if n_sent else 0.0


__all__ = ["request_metrics", "itl_samples", "busy_seconds", "per_request_latency", "share_within",
           "METRIC_PERCENTILES"]
