"""Goodput: a sweep of open-loop rates against a Triton model on loopback, the knee, and the highest rate within SLO.

1. A synchronous run (one request at a time) measures the service capacity, ``1 / mean latency``: a lower bound
   on what one request stream can get (a server that batches or runs several instances may do more).
2. Open-loop points (:func:`workbench.serving.load.open_loop`) at the given rates, or at fractions of that capacity
   (10% .. 100%), each a ResultsTable row with ``scenario: "load"``.
3. ``knee_per_s``: the highest rate whose mean latency is at most twice the mean at the lowest rate (M/D/1 doubles
   at rho = 2/3). ``goodput_per_s``: the highest offered rate, going up from the lowest, at which the point is valid
   (client kept the schedule, no errors) and at least ``attainment`` (99%) of requests met ``slo_ms``; a point that
   fails ends the climb. None when even the lowest rate fails.
"""
from __future__ import annotations

import http.client
import time
from dataclasses import dataclass, field
from typing import Callable

from workbench.serving.load import LoadResult, infer_body, open_loop, split_url

DEFAULT_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 1.0)


def sync_capacity(url: str, model: str, make_inputs: Callable[[int], dict], n: int = 50, warmup: int = 5) -> dict:
    """One request at a time over one keep-alive connection: mean latency and capacity = 1 / mean (per second)."""
    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    times = []
    try:
        for i in range(warmup + n):
            body = infer_body(make_inputs(i))
            start = time.perf_counter()
            conn.request("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"Triton answered {response.status} to {model}: {payload[:200]!r}; check the "
                                   f"model's inputs (make_inputs) against its config")
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        conn.close()
    mean = sum(times) / len(times)
    return {"sync_latency_mean_ms": round(mean * 1e3, 3), "capacity_per_s": round(1.0 / mean, 3), "n": n}


@dataclass
class GoodputResult:
    slo_ms: float
    attainment: float
    capacity_per_s: float
    points: list[LoadResult]
    rows: list[dict]
    knee_per_s: float | None
    goodput_per_s: float | None
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"{'offered/s':>10} {'sent/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
                 f"{'<=SLO':>7} {'queue ms':>8} valid"]
        for r, row in zip(self.points, self.rows):
            lat = r.latency
            fmt = (lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8}")
            lines.append(f"{r.offered_rate_per_s:10.2f} {r.achieved_rate_per_s:8.2f} {fmt(lat['latency_p50_ms'])} "
                         f"{fmt(lat['latency_p99_ms'])} {fmt(r.latency_mean_ms)} {row['slo_attainment']:7.2%} "
                         f"{fmt(r.server.get('queue_ms'))} {'yes' if r.valid else 'NO (client-bound)'}")
        lines.append(f"capacity (synchronous) {self.capacity_per_s:.2f}/s; knee {self.knee_per_s}/s; goodput "
                     f"{self.goodput_per_s}/s at >= {self.attainment:.0%} within {self.slo_ms} ms")
        return "\n".join(lines + self.notes)


def measure_point(url: str, model: str, make_inputs: Callable[[int], dict], rate: float, n_requests: int,
                  slo_ms: float, attainment: float, capacity: dict, row: dict | None = None, table=None,
                  **open_loop_args) -> tuple[LoadResult, dict]:
    """One open-loop point and its ResultsTable row (``scenario: "load"``, SLO attainment, ``meets_slo``)."""
    res = open_loop(url, model, make_inputs, rate, n_requests, **open_loop_args)
    share = res.within(slo_ms)
    out = {**(row or {}), "scenario": "load", "batch_size": 1, **res.as_row(), "slo_ms": slo_ms,
           "slo_attainment": round(share, 5), "meets_slo": bool(res.valid and not res.errors and share >= attainment),
           "capacity_per_s": capacity["capacity_per_s"], "sync_latency_mean_ms": capacity["sync_latency_mean_ms"]}
    return res, (table.append(out) if table is not None else out)


def point_text(res: LoadResult, row: dict) -> str:
    """One progress line for a point."""
    return (f"{res.offered_rate_per_s:.2f}/s: p50 {res.latency['latency_p50_ms']} ms, p99 "
            f"{res.latency['latency_p99_ms']} ms, {row['slo_attainment']:.1%} within {row['slo_ms']} ms"
            + ("" if res.valid else " (client-bound: not valid)"))


def knee_rate(points: list[LoadResult]) -> float | None:
    """Highest offered rate, going up, whose mean latency is at most twice the mean at the lowest rate."""
    points = sorted(points, key=lambda r: r.offered_rate_per_s)
    floor = points[0].latency_mean_ms if points else None
    knee = None
    for res in points:
        if res.latency_mean_ms is None or floor is None or res.latency_mean_ms > 2 * floor:
            break
        knee = res.offered_rate_per_s
    return knee


def goodput_of(rows: list[dict]) -> float | None:
    """Highest offered rate, going up from the lowest, whose row met the SLO (``meets_slo``; the first miss ends the
    climb); None when the lowest rate missed. Rows sorted by ``offered_rate_per_s``."""
    good = None
    for r in rows:
        if not r.get("meets_slo"):
            break
        good = r["offered_rate_per_s"]
    return good


def goodput(url: str, model: str, make_inputs: Callable[[int], dict], slo_ms: float, rates=None,
            fractions=DEFAULT_FRACTIONS, n_requests: int = 500, attainment: float = 0.99, arrival: str = "poisson",
            warmup_s: float = 1.0, timeout_s: float = 10.0, seed: int = 0, row: dict | None = None, table=None,
            progress: Callable[[str], None] | None = None,
            after_point: Callable[[], None] | None = None, capacity: dict | None = None) -> GoodputResult:
    """Sweep open-loop rates, find the knee and the goodput; each point is a row (appended to ``table`` if given).

    Args:
        rates: offered rates per second; None: ``fractions`` of the synchronous capacity.
        capacity: a :func:`sync_capacity` result measured elsewhere (e.g. on the model without dynamic batching,
            whose one-at-a-time rate is not held up by a queue delay); None: measured here on ``url``.
        attainment: fraction of requests (errors and timeouts count as misses) that must meet ``slo_ms``.
        row: columns every row starts from (variant id and name, ...).
        after_point: called after each point (e.g. to check the server is still alive; raise to stop: the rows
            done are already in ``table``).
    """
    if slo_ms <= 0 or not 0 < attainment <= 1:
        raise ValueError(f"slo_ms ({slo_ms}) must be > 0 and attainment ({attainment}) in (0, 1]")
    cap = capacity or sync_capacity(url, model, make_inputs)
    if rates is None:
        rates = [round(f * cap["capacity_per_s"], 3) for f in fractions]
    rates = sorted(float(r) for r in rates)
    if not rates or rates[0] <= 0:
        raise ValueError(f"rates {rates} must be positive numbers per second")
    points, rows = [], []
    for k, rate in enumerate(rates):
        res, out = measure_point(url, model, make_inputs, rate, n_requests, slo_ms, attainment, cap, arrival=arrival,
                                 warmup_s=warmup_s, timeout_s=timeout_s, seed=seed + k, row=row, table=table)
        points.append(res)
        rows.append(out)
        if progress:
            progress(point_text(res, out))
        if after_point:
            after_point()
    knee = knee_rate(points)
    good = goodput_of(rows)
    notes = [] if good is not None else [f"no rate met the SLO: even {rates[0]}/s had < {attainment:.0%} of requests "
                                         f"within {slo_ms} ms (or was not valid)"]
    return GoodputResult(slo_ms=slo_ms, attainment=attainment, capacity_per_s=cap["capacity_per_s"], points=points,
                         rows=rows, knee_per_s=knee, goodput_per_s=good, notes=notes)


__all__ = ["goodput", "goodput_of", "GoodputResult", "sync_capacity", "measure_point", "knee_rate", "point_text", "DEFAULT_FRACTIONS"]
