"""Open-loop load over a streaming (decoupled) Triton model: TTFT, TPOT and inter-token latency under load.

Same honesty rules as :mod:`workbench.serving.load`: send times precomputed on one absolute clock (``schedule``),
every time measured from the *scheduled* send, a warm-up excluded, client-bound points marked not valid. Definitions
as in the generation rows: TTFT = first streamed token - scheduled send; TPOT = (end-to-end - TTFT) / (tokens - 1);
ITL = every gap between consecutive tokens (pooled over requests).

Transport: Triton's HTTP ``generate_stream`` endpoint (server-sent events, one ``data:`` line per response of the
decoupled model). tritonclient's gRPC stream would need grpcio, which the installed tritonclient (``--no-deps``) lacks;
the SSE endpoint carries the same responses as they are sent. The server closes each stream's connection, so every
request opens its own loopback connection after its scheduled time (its connect time counts as latency).
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from workbench.serving.load import _run_async, percentiles, schedule, split_url
from workbench.serving.load_client import SPIN_S


async def _one(host, port, model, body: bytes, t0: float, timeout_s: float, events: list):
    """Stream one request; appends each ``data:`` event's time (s from t0); returns the outcome."""
    head = (f"POST /v2/models/{model}/generate_stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        status = int((await asyncio.wait_for(reader.readline(), timeout_s)).split()[1])
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if not line:
                break
            if line.startswith(b"data:"):
                events.append(time.perf_counter() - t0)
                if b'"error"' in line:
                    return f"error event {line[:120]!r}"
        return "ok" if status == 200 else f"http {status}"
    except asyncio.TimeoutError:
        return "timeout"
    except (OSError, ValueError, IndexError) as exc:
        return type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def _run(host, port, model, bodies, offsets, timeout_s):
    n = len(bodies)
    events = [[] for _ in range(n)]
    sent = [float("nan")] * n
    tasks = []
    t0 = time.perf_counter()
    for i, at in enumerate(offsets):
        target = t0 + at
        delay = target - time.perf_counter()
        if delay > SPIN_S + 0.0005:
            await asyncio.sleep(delay - SPIN_S)
        while time.perf_counter() < target:
            await asyncio.sleep(0)
        sent[i] = time.perf_counter() - t0
        tasks.append(asyncio.ensure_future(_one(host, port, model, bodies[i], t0, timeout_s, events[i])))
    outcome = await asyncio.gather(*tasks)
    return sent, events, list(outcome)


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
    client_bound: bool
    valid: bool
    notes: list[str] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list, repr=False)   # per measured ok request (not a row column)

    def as_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k not in ("ttft", "tpot", "itl", "notes", "ttft_ms")}
        return {**row, **self.ttft, **self.tpot, **self.itl, "notes": "; ".join(self.notes)}

    def ttft_within(self, slo_ms: float) -> float:
        """Share of measured requests whose first token came within ``slo_ms`` (errors count as misses): defined at
        any sample count, unlike a p99 (>= 99% within the SLO is TTFT p99 <= SLO)."""
        return sum(t <= slo_ms for t in self.ttft_ms) / self.n_measured if self.n_measured else 0.0


def open_loop_stream(url: str, model: str, make_body, rate_per_s: float, n_requests: int, arrival: str = "poisson",
                     warmup_s: float = 1.0, timeout_s: float = 30.0, seed: int = 0) -> StreamLoadResult:
    """Stream ``n_requests`` at ``rate_per_s`` from a precomputed schedule; ``make_body(i) -> dict`` is request i's
    JSON (input name -> value, as Triton's generate extension takes it). Loopback only."""
    import numpy as np

    host, port = split_url(url)
    if not 2 <= n_requests <= 20_000 or timeout_s <= 0:
        raise ValueError(f"n_requests {n_requests} must be 2..20000 and timeout_s ({timeout_s}) > 0")
    offsets = schedule(rate_per_s, n_requests, arrival, seed=seed)
    bodies = [json.dumps(make_body(i)).encode() for i in range(n_requests)]
    sent, events, outcome = _run_async(lambda: _run(host, port, model, bodies, offsets, timeout_s))
    measured = [i for i in range(n_requests) if offsets[i] >= warmup_s]
    if len(measured) < 2:
        raise ValueError(f"only {len(measured)} requests after the {warmup_s}s warm-up: send more or shorten it")
    ok = [i for i in measured if outcome[i] == "ok" and events[i]]
    ttft = [(events[i][0] - offsets[i]) * 1e3 for i in ok]
    tpot = [(events[i][-1] - events[i][0]) * 1e3 / (len(events[i]) - 1) for i in ok if len(events[i]) > 1]
    itl = [g * 1e3 for i in ok for g in np.diff(events[i])]
    lag = np.array([(sent[i] - offsets[i]) * 1e3 for i in measured])
    span = sent[measured[-1]] - sent[measured[0]]
    gap_ms = (offsets[measured[-1]] - offsets[measured[0]]) / (len(measured) - 1) * 1e3
    achieved = (len(measured) - 1) / span if span > 0 else 0.0
    lag_p99 = float(np.percentile(lag, 99))
    client_bound = bool(lag_p99 > 0.1 * gap_ms or achieved < 0.97 * 1e3 / gap_ms)
    errors = len(measured) - len(ok)
    notes = ([f"client-bound: send lag p99 {lag_p99:.2f} ms vs mean gap {gap_ms:.2f} ms; the point is not valid"]
             if client_bound else [])
    if errors:
        notes.append(f"{errors} errors ({', '.join(sorted({outcome[i] for i in measured if i not in ok}))})")
    return StreamLoadResult(
        model=model, offered_rate_per_s=round(rate_per_s, 3), achieved_rate_per_s=round(achieved, 3),
        n_measured=len(measured), n_ok=len(ok), errors=errors,
        tokens_mean=round(float(np.mean([len(events[i]) for i in ok])), 2) if ok else 0.0,
        ttft=percentiles(ttft, "ttft") if ttft else {}, tpot=percentiles(tpot, "tpot") if tpot else {},
        itl=percentiles(itl, "itl") if itl else {}, send_lag_p99_ms=round(lag_p99, 3), client_bound=client_bound,
        valid=not client_bound and not errors, notes=notes, ttft_ms=[round(t, 3) for t in ttft])


__all__ = ["open_loop_stream", "StreamLoadResult"]
