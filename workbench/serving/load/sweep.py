"""Goodput: one definition of capacity, the rate ladder and the climb's end, for plain and streamed requests.

1. **Capacity** (:func:`capacity`): requests one at a time through the one client (the pinned client process), the
   next sent after the last byte of the previous answer; capacity = 1 / the *median* end-to-end time (a median: one
   request slowed by a neighbour on a shared machine must not move the ladder). A lower bound on what one request
   stream gets (a server that batches or runs several instances may do more). Streams: the same, with every stream
   checked to carry the tokens asked for.
2. **Rate ladder** (:func:`rate_ladder`): the given rates, or fractions (10% .. 100%) of that capacity.
3. Open-loop points (:func:`workbench.serving.load.open_loop`), each a ResultsTable row with
   ``scenario: "load"`` and an ``slo_outcome``: ``"pass"`` (valid, no errors, at least ``attainment`` (99%) of requests
   within ``slo_ms``), ``"miss"``, or ``"client-limited"`` (the client could not keep the schedule: says nothing about
   the server).
4. **Goodput** (:func:`goodput_of`, :func:`climb_end`): going up from the lowest rate, the highest passing rate before
   the first point that does not pass. A miss ends it at the server's limit; a client-limited point ends it at the
   *client's*: the goodput is then a lower bound, shown as ``>= X (client limited)`` (:func:`goodput_text`).
   ``knee_per_s``: the highest rate whose mean latency is at most twice the mean at the lowest rate (M/D/1 doubles
   at rho = 2/3).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from workbench.serving.load.client import split_url
from workbench.serving.load.open_loop import LoadResult, open_loop

DEFAULT_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 1.0)


def capacity(url: str, model: str, make_body: Callable[[int], bytes], n: int = 50, warmup: int = 5,
             stream: bool = False, tokens: int | None = None, timeout_s: float = 60.0) -> dict:
    """One request at a time through the pinned client: the median end-to-end time and capacity = 1 / it.

    ``make_body(i)`` is request i's JSON body (bytes). ``stream``: ``generate_stream`` requests, each of which must
    carry ``tokens`` tokens (when given). Returns ``sync_latency_p50_ms``, ``sync_latency_mean_ms``,
    ``capacity_per_s``, ``n`` and the client columns."""
    import statistics

    from workbench.serving.load.client import request_bytes
    from workbench.serving.load.pinned import client_run
    from workbench.serving.load.schedule import sequential_blocking

    host, port = split_url(url)
    messages = [request_bytes(host, port, model, make_body(i), stream=stream) for i in range(warmup + n)]
    answers, client = client_run(sequential_blocking, {"host": host, "port": port, "messages": messages,
                                                       "stream": stream, "timeout_s": timeout_s},
                                 timeout_s=timeout_s * (warmup + n) + 60)
    bad = [(i, o) for i, (_, o, _) in enumerate(answers) if o != "ok"]
    if bad:
        raise RuntimeError(f"Triton answered {bad[0][1]} to request {bad[0][0]} for {model}: check the model's inputs "
                           f"(make_body) against its config, and the server log")
    if stream and tokens is not None:
        short = [(i, k) for i, (_, _, k) in enumerate(answers) if k != tokens]
        if short:
            raise RuntimeError(f"{model} streamed {short[0][1]} tokens, not the {tokens} asked for: check the "
                               f"server log")
    times = [t for t, _, _ in answers[warmup:]]
    median = statistics.median(times)
    return {"sync_latency_p50_ms": round(median * 1e3, 3),
            "sync_latency_mean_ms": round(sum(times) / len(times) * 1e3, 3),
            "capacity_per_s": round(1.0 / median, 3), "n": n, "sync_client_cpu_share": client["client_cpu_share"]}


def sync_capacity(url: str, model: str, make_inputs: Callable[[int], dict], n: int = 50, warmup: int = 5) -> dict:
    """:func:`capacity` of a request/response model from ``make_inputs(i) -> {name: array}``."""
    from workbench.serving.load.client import infer_body

    bodies = [infer_body(make_inputs(i)) for i in range(warmup + n)]
    return capacity(url, model, bodies.__getitem__, n, warmup)


def rate_ladder(rates, capacity_per_s: float, fractions=DEFAULT_FRACTIONS) -> list[float]:
    """The rates to measure, ascending: ``rates`` as given, else ``fractions`` of the capacity."""
    if rates is None:
        rates = [round(f * capacity_per_s, 3) for f in fractions]
    rates = sorted(float(r) for r in rates)
    if not rates or rates[0] <= 0:
        raise ValueError(f"rates {rates} must be positive numbers per second")
    return rates


def slo_outcome(valid: bool, errors: int, share: float, attainment: float, lag_high: bool = False,
                share_from_sent: float | None = None) -> str:
    """``"client-limited"`` (the point says nothing about the server), ``"pass"`` or ``"miss"``.

    ``share`` is timed from the scheduled sends (lag charged). With ``lag_high`` (the client woke late), a miss whose
    ``share_from_sent`` (timed from the actual sends) would pass is the client's: client-limited, not a miss."""
    if not valid:
        return "client-limited"
    if not errors and share >= attainment:
        return "pass"
    if lag_high and not errors and share_from_sent is not None and share_from_sent >= attainment:
        return "client-limited"
    return "miss"


@dataclass
class GoodputResult:
    slo_ms: float
    attainment: float
    capacity_per_s: float
    points: list[LoadResult]
    rows: list[dict]
    knee_per_s: float | None
    goodput_per_s: float | None
    climb_end: str = "miss"
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"{'offered/s':>10} {'sent/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
                 f"{'<=SLO':>7} {'queue ms':>8} {'clientCPU':>8} outcome"]
        for r, row in zip(self.points, self.rows):
            lat = r.latency
            fmt = (lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8}")
            lines.append(f"{r.offered_rate_per_s:10.2f} {r.achieved_rate_per_s:8.2f} {fmt(lat['latency_p50_ms'])} "
                         f"{fmt(lat['latency_p99_ms'])} {fmt(r.latency_mean_ms)} {row['slo_attainment']:7.2%} "
                         f"{fmt(r.server.get('queue_ms'))} {fmt(r.client.get('client_cpu_share'))} {row['slo_outcome']}")
        lines.append(f"capacity (synchronous) {self.capacity_per_s:.2f}/s; knee {self.knee_per_s}/s; goodput "
                     f"{goodput_text(self.goodput_per_s, self.climb_end)} at >= {self.attainment:.0%} within "
                     f"{self.slo_ms} ms")
        return "\n".join(lines + self.notes)


def measure_point(url: str, model: str, make_inputs: Callable[[int], dict], rate: float, n_requests: int,
                  slo_ms: float, attainment: float, capacity: dict, row: dict | None = None, table=None,
                  **open_loop_args) -> tuple[LoadResult, dict]:
    """One open-loop point and its ResultsTable row (``scenario: "load"``, SLO attainment, ``meets_slo``)."""
    res = open_loop(url, model, make_inputs, rate, n_requests, **open_loop_args)
    share = res.within(slo_ms)
    outcome = slo_outcome(res.valid, res.errors, share, attainment, res.send_lag_high,
                          res.within_from_sent(slo_ms) if res.send_lag_high else None)
    out = {**(row or {}), "scenario": "load", "batch_size": 1, **res.as_row(), "slo_ms": slo_ms,
           "slo_attainment": round(share, 5), "slo_outcome": outcome, "meets_slo": outcome == "pass",
           "capacity_per_s": capacity["capacity_per_s"], "sync_latency_p50_ms": capacity["sync_latency_p50_ms"]}
    return res, (table.append(out) if table is not None else out)


def point_text(res: LoadResult, row: dict) -> str:
    """One progress line for a point."""
    return (f"{res.offered_rate_per_s:.2f}/s: p50 {res.latency['latency_p50_ms']} ms, p99 "
            f"{res.latency['latency_p99_ms']} ms, {row['slo_attainment']:.1%} within {row['slo_ms']} ms"
            + f", client CPU {res.client.get('client_cpu_share')}"
            + ("" if res.valid else " (client-limited: not a pass, not a miss)"))


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


def _climb(rows: list[dict]) -> tuple[float | None, str]:
    good = None
    for r in rows:
        outcome = r.get("slo_outcome") or ("pass" if r.get("meets_slo") else "miss")
        if outcome != "pass":
            return good, outcome
        good = r["offered_rate_per_s"]
    return good, "top"


def goodput_of(rows: list[dict]) -> float | None:
    """Highest offered rate, going up from the lowest, whose row passed (``slo_outcome`` "pass"; rows without it:
    ``meets_slo``) before the first that did not; None when the lowest did not. Rows sorted by
    ``offered_rate_per_s``. Whether that end was the server's or the client's: :func:`climb_end`."""
    return _climb(rows)[0]


def climb_end(rows: list[dict]) -> str:
    """What ended the climb of :func:`goodput_of`: ``"miss"`` (the server's limit), ``"client-limited"`` (the
    client's: the goodput is a lower bound) or ``"top"`` (every rate passed: a lower bound too)."""
    return _climb(rows)[1]


def goodput_text(value: float | None, end: str) -> str:
    """``"120.0/s"``, ``">= 120.0/s (client limited)"``, ``">= 120.0/s (highest rate tried)"``, or ``"none"``."""
    if value is None:
        return "none (client limited at the lowest rate)" if end == "client-limited" else "none"
    if end == "client-limited":
        return f">= {value}/s (client limited)"
    return f">= {value}/s (highest rate tried)" if end == "top" else f"{value}/s"


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
    rates = rate_ladder(rates, cap["capacity_per_s"], fractions)
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
    good, end = _climb(rows)
    notes = [] if good is not None else [f"no rate met the SLO: even {rates[0]}/s had < {attainment:.0%} of requests "
                                         f"within {slo_ms} ms (or the client was limited)"]
    return GoodputResult(slo_ms=slo_ms, attainment=attainment, capacity_per_s=cap["capacity_per_s"], points=points,
                         rows=rows, knee_per_s=knee, goodput_per_s=good, climb_end=end, notes=notes)


__all__ = ["goodput", "goodput_of", "climb_end", "goodput_text", "GoodputResult", "capacity", "sync_capacity",
           "rate_ladder", "slo_outcome", "measure_point", "knee_rate", "point_text", "DEFAULT_FRACTIONS"]
