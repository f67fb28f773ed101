"""Open-loop load against a Triton server on loopback: scheduled arrivals, latency from the scheduled send time.

How it stays honest:

- **Open loop.** Every send time is computed before the run on one absolute clock (``time.perf_counter()`` at start
  plus cumulative gaps from a seeded RNG); one asyncio loop sends each request at its time whatever is in flight.
  Nothing waits for a response before the next send.
- **No coordinated omission.** Latency runs from the *scheduled* send time to the last byte of the answer, so a
  client that sends late is charged for its lateness. How late it sent (``send_lag``) is reported too.
- **The client is not what is measured.** The client runs in its own process pinned to its own CPUs, the server on
  the others (:mod:`workbench.serving.load.pinned`); each point reports the client's CPU use. A point where the
  client could not keep up (requests sent at < 97% of the offered rate, some never sent, or the client busier than
  ``CLIENT_LIMIT_CPU_SHARE`` of its core) is ``client_limited``: neither a pass nor an SLO miss (``valid: False``);
  a climb stops there. A send-lag p99 above ``max(10% of the mean gap, LAG_FLOOR_MS)`` (a client woken late, e.g.
  by other work on its core) sets ``send_lag_high``: the lag is charged to the latency, so a pass stands, but a miss
  that the requests' own server-side times (from the actual send) would have passed is the client's, not the
  server's (:func:`workbench.serving.load.sweep.slo_outcome`).
- **Warm-up** requests (scheduled before ``warmup_s``) are sent but not counted. A run is bounded by count
  (1..20000) and by wall clock (schedule span + ``timeout_s``); a request not answered by then is a timeout.
- **Server split.** Triton's model statistics (``/v2/models/<m>/stats``) before and after give, per request, the
  time spent queued and computing (input + infer + output), deltas over the run.

Arrival times and the sending loop: :mod:`workbench.serving.load.schedule`; the protocol:
:mod:`workbench.serving.load.client`. Loopback only: any other host is refused.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from workbench.measure.timing import min_samples_for
from workbench.serving.load.client import (LoadError, infer_body, model_stats, request_bytes, server_split,
                                          split_url)
from workbench.serving.load.pinned import CLIENT_LIMIT_CPU_SHARE, client_run
from workbench.serving.load.schedule import run_schedule_blocking, schedule

LAG_FLOOR_MS = 2.0   # asyncio wakes up to ~1 ms late (ms-coarse epoll timer): lag below this is the timer, not load
LOAD_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
# Samples a percentile needs before it is reported: the workbench's one rule (timing.min_samples_for), to p99.9.
LOAD_MIN_SAMPLES = {name: min_samples_for(rank) for name, rank in LOAD_PERCENTILES.items()}
MAX_REQUESTS = 20_000


def percentiles(values_ms, prefix: str = "latency") -> dict:
    """``latency_p50_ms`` ... ``latency_p99.9_ms`` with ``_n`` beside each; too few samples: None and a ``_note``."""
    import numpy as np

    out, n = {}, len(values_ms)
    for name, q in LOAD_PERCENTILES.items():
        need = LOAD_MIN_SAMPLES[name]
        out[f"{prefix}_{name}_ms"] = round(float(np.percentile(values_ms, q)), 3) if n >= max(need, 1) else None
        out[f"{prefix}_{name}_n"] = n
        if n < need or n == 0:
            out[f"{prefix}_{name}_note"] = f"n={n} < {need}"
    return out


def client_limit(lag_ms, mean_gap_ms: float, achieved: float, scheduled_rate: float, unsent: int,
                 client: dict) -> tuple[list[str], str | None]:
    """(why the client could not keep up: empty if it did, why its send lag is high: None if it is not). One rule
    for plain and streamed runs (see the module doc)."""
    import numpy as np

    why = []
    lag_p99 = float(np.percentile(lag_ms, 99)) if len(lag_ms) else float("inf")
    lag = (f"send lag p99 {lag_p99:.2f} ms > max(10% of the mean gap {mean_gap_ms:.2f} ms, {LAG_FLOOR_MS} ms)"
           if lag_p99 > max(0.1 * mean_gap_ms, LAG_FLOOR_MS) else None)
    if achieved < 0.97 * scheduled_rate:
        why.append(f"sent at {achieved:.1f}/s of {scheduled_rate:.1f}/s scheduled")
    if unsent:
        why.append(f"{unsent} requests never sent")
    share = client.get("client_cpu_share")
    if share is not None and share > CLIENT_LIMIT_CPU_SHARE:
        why.append(f"client used {share:.0%} of its CPU (> {CLIENT_LIMIT_CPU_SHARE:.0%})")
    return why, lag


@dataclass
class LoadResult:
    """One open-loop point: what was offered, what went out, what came back, and whether the client kept up."""

    model: str
    arrival: str
    offered_rate_per_s: float
    achieved_rate_per_s: float        # rate requests actually went out at (measured part)
    throughput_per_s: float           # answers per second over the measured part
    n_requests: int                   # scheduled, warm-up included
    n_warmup: int
    n_measured: int
    n_ok: int
    errors: int
    timeouts: int
    latency: dict                     # latency_<p>_ms / _n / _note, from scheduled send time
    latency_mean_ms: float | None
    send_lag_max_ms: float
    send_lag_p99_ms: float
    send_lag_p50_ms: float
    send_lag_mean_ms: float
    mean_gap_ms: float
    client_limited: bool              # the client could not keep up: neither a pass nor an SLO miss
    valid: bool
    send_lag_high: bool = False       # woken late: a miss the actual-send times would pass is the client's
    client: dict = field(default_factory=dict)  # client_cpu_share, client_cpus, server_cpus, client_apart
    notes: list[str] = field(default_factory=list)
    server: dict = field(default_factory=dict)  # per-request queue / compute ms and count, from Triton's statistics
    latencies_ms: list[float] = field(default_factory=list, repr=False)   # measured requests, misses as +inf
    scheduled_s: list[float] = field(default_factory=list, repr=False)    # every request's scheduled send (s)
    sent_s: list[float] = field(default_factory=list, repr=False)         # ... actual send (NaN: never sent)
    done_s: list[float] = field(default_factory=list, repr=False)         # ... last byte of the answer

    def within(self, slo_ms: float) -> float:
        """Fraction of measured requests answered correctly within ``slo_ms`` (errors and timeouts count as misses)."""
        if not self.n_measured:
            return 0.0
        return sum(1 for x in self.latencies_ms if x <= slo_ms) / self.n_measured

    def within_from_sent(self, slo_ms: float) -> float:
        """As :meth:`within`, timed from each request's actual send instead of its scheduled one (the server's part
        plus the wire): what the point would show had the client sent on time."""
        if not self.n_measured:
            return 0.0
        first = len(self.scheduled_s) - self.n_measured
        return sum(1 for k, x in enumerate(self.latencies_ms)
                   if x != float("inf") and (self.done_s[first + k] - self.sent_s[first + k]) * 1e3 <= slo_ms) \
            / self.n_measured

    def as_row(self) -> dict:
        skip = ("latency", "latencies_ms", "server", "notes", "client", "scheduled_s", "sent_s", "done_s")
        row = {k: v for k, v in asdict(self).items() if k not in skip}
        row.update(self.latency)
        row.update(self.client)
        row.update({f"server_{k}": v for k, v in self.server.items()})
        row["notes"] = "; ".join(self.notes)
        return row


def open_loop(url: str, model: str, make_inputs: Callable[[int], dict], rate_per_s: float, n_requests: int,
              arrival: str = "poisson", burstiness: float = 1.0, warmup_s: float = 1.0, timeout_s: float = 10.0,
              seed: int = 0, connections: int = 32) -> LoadResult:
    """Send ``n_requests`` to ``model`` at ``rate_per_s`` on a precomputed schedule, open loop; see the module doc.

    Args:
        url: ``host:port`` of Triton's HTTP endpoint (loopback only).
        make_inputs: ``i -> {input name: np.ndarray}`` for request ``i`` (bodies are built before the clock starts).
        arrival: ``"poisson"``, ``"constant"`` or ``"gamma"`` (with ``burstiness``, the gaps' coefficient of variation).
        warmup_s: requests scheduled before this many seconds are sent but not counted.
        timeout_s: per-request limit; the whole run stops at schedule span + ``timeout_s``.

    Example:
        >>> r = open_loop("127.0.0.1:8000", "clf", lambda i: {"x": np.ones((1, 4), np.float32)}, 50, 1000)  # doctest: +SKIP
        >>> r.latency["latency_p99_ms"], r.client_limited, r.client["client_cpu_share"]
    """
    import numpy as np

    host, port = split_url(url)
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise ValueError(f"n_requests {n_requests} must be 1..{MAX_REQUESTS}")
    if timeout_s <= 0 or warmup_s < 0:
        raise ValueError(f"timeout_s ({timeout_s}) must be > 0 and warmup_s ({warmup_s}) >= 0")
    offsets = schedule(rate_per_s, n_requests, arrival, burstiness, seed)
    messages = [request_bytes(host, port, model, infer_body(make_inputs(i))) for i in range(n_requests)]
    try:
        before = model_stats(url, model)
    except OSError as exc:
        raise LoadError(f"no Triton model {model!r} at {url} ({exc}): start the server first "
                        f"(workbench.serving.bundle.triton_server.TritonServer) and check the model name") from exc
    wall_limit = float(offsets[-1]) + timeout_s
    run, client = client_run(run_schedule_blocking, {
        "host": host, "port": port, "messages": messages, "offsets": [float(x) for x in offsets],
        "timeout_s": timeout_s, "wall_limit_s": wall_limit, "connections": min(connections, n_requests)},
        timeout_s=wall_limit + 60)
    sent, done, outcome = run["sent"], run["done"], run["outcome"]
    after = model_stats(url, model)
    answered = sum(1 for o in outcome if o == "ok")
    for _ in range(40):  # Triton counts a request after its answer is sent: let the statistics catch up
        got = after.get("success", (0, 0))[0] - before.get("success", (0, 0))[0]
        if got >= answered:
            break
        time.sleep(0.05)
        after = model_stats(url, model)

    sent, done, offsets = np.array(sent), np.array(done), np.asarray(offsets)
    measured = np.flatnonzero(offsets >= warmup_s)
    notes = []
    if len(measured) < 2:
        raise ValueError(f"only {len(measured)} requests fall after the {warmup_s}s warm-up: send more requests "
                         f"(n_requests) or shorten warmup_s")
    out = [outcome[i] for i in measured]
    ok = np.array([o == "ok" for o in out])
    lat = (done[measured] - offsets[measured]) * 1e3
    lat_ok = lat[ok]
    went = measured[~np.isnan(sent[measured])]
    lag = (sent[went] - offsets[went]) * 1e3
    span_sched = offsets[measured[-1]] - offsets[measured[0]]
    span_sent = (sent[went[-1]] - sent[went[0]]) if len(went) > 1 else float("inf")
    achieved = (len(went) - 1) / span_sent if span_sent > 0 else 0.0
    finished = done[measured][ok]
    throughput = float(ok.sum() / (finished.max() - offsets[measured[0]])) if ok.any() else 0.0
    mean_gap_ms = float(span_sched / (len(measured) - 1) * 1e3)
    scheduled_rate = (len(measured) - 1) / span_sched if span_sched > 0 else float("inf")
    why, lag_high = client_limit(lag, mean_gap_ms, achieved, scheduled_rate, len(measured) - len(went), client)
    if why:
        notes.append("client-limited: " + "; ".join(why) + ": neither a pass nor an SLO miss; the server may do "
                     "more (give the client more CPUs: WORKBENCH_CLIENT_CPUS, or a lower rate)")
    if lag_high:
        notes.append(lag_high + " (charged to latency)")
    errors = int(sum(1 for o in out if o not in ("ok", "timeout", "unsent")))
    timeouts = int(sum(1 for o in out if o in ("timeout", "unsent")))
    if errors:
        kinds = sorted({o for o in out if o not in ("ok", "timeout", "unsent")})
        notes.append(f"{errors} errors ({', '.join(kinds)})")
    # Misses (errors, timeouts) are kept as +inf so `within(slo)` counts them as late.
    all_lat = [float(x) if o else float("inf") for x, o in zip(lat, ok)]
    server = server_split(before, after)
    wall = float(np.nanmax(done)) if np.isfinite(done).any() else None
    # executing time per second of the run, summed over instances: ~instances when the model never idles
    server["exec_share"] = round(server["exec_s"] / wall, 4) if wall and server.get("exec_s") is not None else None
    pct = (lambda q: round(float(np.percentile(lag, q)), 3) if len(lag) else float("inf"))
    return LoadResult(
        model=model, arrival=arrival, offered_rate_per_s=round(float(rate_per_s), 3),
        achieved_rate_per_s=round(float(achieved), 3), throughput_per_s=round(throughput, 3), n_requests=n_requests,
        n_warmup=n_requests - len(measured), n_measured=len(measured), n_ok=int(ok.sum()), errors=errors,
        timeouts=timeouts, latency=percentiles(lat_ok),
        latency_mean_ms=round(float(lat_ok.mean()), 3) if len(lat_ok) else None,
        send_lag_max_ms=pct(100), send_lag_p99_ms=pct(99), send_lag_p50_ms=pct(50),
        send_lag_mean_ms=round(float(lag.mean()), 3) if len(lag) else float("inf"),
        mean_gap_ms=round(mean_gap_ms, 3), client_limited=bool(why), valid=not why, send_lag_high=bool(lag_high),
        client=client, notes=notes,
        server=server, latencies_ms=all_lat, scheduled_s=[float(x) for x in offsets],
        sent_s=[float(x) for x in sent], done_s=[float(x) for x in done])


__all__ = ["open_loop", "LoadResult", "LoadError", "schedule", "percentiles", "client_limit", "model_stats",
           "server_split", "split_url", "infer_body", "LAG_FLOOR_MS"]
