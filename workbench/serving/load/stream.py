"""Open-loop load over a streaming (decoupled) Triton model: TTFT, TPOT and inter-token latency under load.

Same loop and rules as :mod:`workbench.serving.load.open_loop`: send times precomputed on one absolute clock, the
one sending loop (:func:`workbench.serving.load.schedule.run_schedule`, ``stream=True``) in the pinned client
process, every time measured from the *scheduled* send, a warm-up excluded, client-limited points marked not valid.
Definitions as in the generation rows: TTFT = first streamed token - scheduled send; TPOT = (end-to-end - TTFT) /
(tokens - 1); ITL = every gap between consecutive tokens (pooled over requests).

Transport: Triton's HTTP ``generate_stream`` endpoint (server-sent events, one ``data:`` line per response of the
decoupled model). tritonclient's gRPC stream would need grpcio, which the installed tritonclient (``--no-deps``) lacks;
the SSE endpoint carries the same responses as they are sent. The server closes each stream's connection, so every
request opens its own loopback connection at its scheduled time; its send time is taken once the connection is open
and the request written, so the connect time is send lag (charged to TTFT, and judged by the client-limit rule).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from workbench.serving.load.client import request_bytes, split_url
from workbench.serving.load.open_loop import client_limit, percentiles
from workbench.serving.load.pinned import client_run
from workbench.serving.load.schedule import run_schedule_blocking, schedule


# fields a row spreads out (the percentile dicts, the client's facts, the notes) or leaves out (per-request lists)
_NOT_COLUMNS = ("ttft", "tpot", "itl", "notes", "ttft_ms", "ttft_sent_ms", "tpot_ms", "client")


@dataclass
class StreamLoadResult:
    """One open-loop streaming point: TTFT / TPOT / ITL percentiles (ms) with their sample counts."""

    model: str
    offered_rate_per_s: float
    achieved_rate_per_s: float
    n_measured: int
    n_ok: int
    errors: int
    tokens_mean: float
    ttft: dict
    tpot: dict
    itl: dict
    send_lag_p99_ms: float
    client_limited: bool
    valid: bool
    send_lag_high: bool = False      # woken late: a miss the actual-send TTFTs would pass is the client's
    client: dict = field(default_factory=dict)   # client_cpu_share, client_cpus, server_cpus, client_apart
    notes: list[str] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list, repr=False)   # per measured ok request (not a row column)
    ttft_sent_ms: list[float] = field(default_factory=list, repr=False)   # ... from the actual send
    tpot_ms: list = field(default_factory=list, repr=False)   # per measured ok request (None: one token)

    def as_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k not in _NOT_COLUMNS}
        return {**row, **self.ttft, **self.tpot, **self.itl, **self.client, "notes": "; ".join(self.notes)}

    def ttft_within(self, slo_ms: float) -> float:
        """Share of measured requests whose first token came within ``slo_ms`` (errors count as misses): defined at
        any sample count, unlike a p99 (>= 99% within the SLO is TTFT p99 <= SLO)."""
        return sum(t <= slo_ms for t in self.ttft_ms) / self.n_measured if self.n_measured else 0.0

    def ttft_within_from_sent(self, slo_ms: float) -> float:
        """As :meth:`ttft_within`, timed from each request's actual send."""
        return sum(t <= slo_ms for t in self.ttft_sent_ms) / self.n_measured if self.n_measured else 0.0


def open_loop_stream(url: str, model: str, make_body, rate_per_s: float, n_requests: int, arrival: str = "poisson",
                     warmup_s: float = 1.0, timeout_s: float = 30.0, seed: int = 0) -> StreamLoadResult:
    """Stream ``n_requests`` at ``rate_per_s`` from a precomputed schedule; ``make_body(i) -> dict`` is request i's
    JSON (input name -> value, as Triton's generate extension takes it). Loopback only."""
    import numpy as np

    host, port = split_url(url)
    if not 2 <= n_requests <= 20_000 or timeout_s <= 0:
        raise ValueError(f"n_requests {n_requests} must be 2..20000 and timeout_s ({timeout_s}) > 0")
    offsets = schedule(rate_per_s, n_requests, arrival, seed=seed)
    messages = [request_bytes(host, port, model, json.dumps(make_body(i)).encode(), stream=True)
                for i in range(n_requests)]
    wall_limit = float(offsets[-1]) + timeout_s
    run, client = client_run(run_schedule_blocking, {
        "host": host, "port": port, "messages": messages, "offsets": [float(x) for x in offsets],
        "timeout_s": timeout_s, "wall_limit_s": wall_limit, "stream": True}, timeout_s=wall_limit + 60)
    sent, events, outcome = run["sent"], run["events"], run["outcome"]
    measured = [i for i in range(n_requests) if offsets[i] >= warmup_s]
    if len(measured) < 2:
        raise ValueError(f"only {len(measured)} requests after the {warmup_s}s warm-up: send more or shorten it")
    ok = [i for i in measured if outcome[i] == "ok" and events[i]]
    ttft = [(events[i][0] - offsets[i]) * 1e3 for i in ok]
    per_request_tpot = [(events[i][-1] - events[i][0]) * 1e3 / (len(events[i]) - 1) if len(events[i]) > 1 else None
                        for i in ok]
    tpot = [t for t in per_request_tpot if t is not None]
    itl = [g * 1e3 for i in ok for g in np.diff(events[i])]
    went = [i for i in measured if sent[i] == sent[i]]   # NaN: never sent
    lag = np.array([(sent[i] - offsets[i]) * 1e3 for i in went])
    span = sent[went[-1]] - sent[went[0]] if len(went) > 1 else 0.0
    gap_ms = (offsets[measured[-1]] - offsets[measured[0]]) / (len(measured) - 1) * 1e3
    achieved = (len(went) - 1) / span if span > 0 else 0.0
    lag_p99 = float(np.percentile(lag, 99)) if len(lag) else float("inf")
    why, lag_high = client_limit(lag, gap_ms, achieved, 1e3 / gap_ms, len(measured) - len(went), client)
    errors = len(measured) - len(ok)
    notes = ["client-limited: " + "; ".join(why) + ": neither a pass nor an SLO miss"] if why else []
    notes += [lag_high + " (charged to TTFT)"] if lag_high else []
    if errors:
        notes.append(f"{errors} errors ({', '.join(sorted({outcome[i] for i in measured if i not in ok}))})")
    return StreamLoadResult(
        model=model, offered_rate_per_s=round(rate_per_s, 3), achieved_rate_per_s=round(achieved, 3),
        n_measured=len(measured), n_ok=len(ok), errors=errors,
        tokens_mean=round(float(np.mean([len(events[i]) for i in ok])), 2) if ok else 0.0,
        ttft=percentiles(ttft, "ttft") if ttft else {}, tpot=percentiles(tpot, "tpot") if tpot else {},
        itl=percentiles(itl, "itl") if itl else {}, send_lag_p99_ms=round(lag_p99, 3), client_limited=bool(why),
        valid=not why, send_lag_high=bool(lag_high), client=client, notes=notes,
        ttft_ms=[round(t, 3) for t in ttft], ttft_sent_ms=[round((events[i][0] - sent[i]) * 1e3, 3) for i in ok],
        tpot_ms=[None if t is None else round(t, 3) for t in per_request_tpot])


__all__ = ["open_loop_stream", "StreamLoadResult"]
