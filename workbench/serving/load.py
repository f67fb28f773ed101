"""Open-loop load against a Triton server on loopback: scheduled arrivals, latency from the scheduled send time.

How it stays honest:

- **Open loop.** Every send time is computed before the run on one absolute clock (``time.perf_counter()`` at start
  plus cumulative gaps from a seeded RNG); one asyncio loop sends each request at its time whatever is in flight.
  Nothing waits for a response before the next send.
- **No coordinated omission.** Latency runs from the *scheduled* send time to the last byte of the answer, so a
  client that sends late is charged for its lateness. How late it sent (``send_lag``) is reported too; when the
  client could not keep the schedule (send-lag p99 > 10% of the mean gap, or requests went out at < 97% of the
  offered rate) the result says ``client_bound: True`` and the point is not valid.
- **Poisson given n.** ``arrival="poisson"`` draws n exponential gaps and rescales them so the n arrivals span exactly
  ``n / rate``: a Poisson process conditioned on its count (arrival times uniform order statistics), so the offered
  rate is the rate actually sent, not a 1/sqrt(n) accident.
- **Warm-up** requests (scheduled before ``warmup_s``) are sent but not counted. A run is bounded by count
  (1..20000) and by wall clock (schedule span + ``timeout_s``); a request not answered by then is a timeout.
- **Server split.** Triton's model statistics (``/v2/models/<m>/stats``) before and after give, per request, the
  time spent queued and computing (input + infer + output), deltas over the run.

The client speaks Triton's HTTP/REST (KServe v2) JSON protocol over asyncio streams itself: the installed
tritonclient has neither ``http.aio`` (needs aiohttp) nor ``grpc.aio`` (needs grpcio), and its blocking HTTP client
would need a thread per request in flight. Loopback only: any other host is refused.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Callable

from workbench.measure.timing import min_samples_for
from workbench.serving.load_client import infer_body, run_schedule

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOAD_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
# Samples a percentile needs before it is reported: the workbench's one rule (timing.min_samples_for), to p99.9.
LOAD_MIN_SAMPLES = {name: min_samples_for(rank) for name, rank in LOAD_PERCENTILES.items()}
MAX_REQUESTS = 20_000


class LoadError(RuntimeError):
    """The load run could not be set up or the server misbehaved; the message says why and what to do."""


def split_url(url: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"`` / ``"http://localhost:8000"`` -> (host, port); any non-loopback host is refused."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]:")
    else:
        host, _, port = rest.rpartition(":")
    if host not in LOOPBACK:
        raise ValueError(f"load generation is loopback only: host {host!r} in {url!r} refused; serve the model "
                         f"locally (workbench load serves the bundle on 127.0.0.1) and use one of {LOOPBACK}")
    if not port.isdigit():
        raise ValueError(f"url {url!r} has no port: use host:port, e.g. 127.0.0.1:8000")
    return host, int(port)


def schedule(rate_per_s: float, n: int, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0):
    """Send offsets in seconds from the start (first at 0), mean gap exactly ``1/rate``.

    ``poisson``: exponential gaps; ``constant``: equal gaps; ``gamma``: gamma gaps with coefficient of variation
    ``burstiness`` (1 = Poisson, > 1 burstier, < 1 smoother). Random gaps are rescaled to mean ``1/rate``.
    """
    import numpy as np

    if rate_per_s <= 0 or n < 1:
        raise ValueError(f"rate_per_s ({rate_per_s}) must be > 0 and n ({n}) >= 1")
    rng = np.random.default_rng(seed)
    if arrival == "constant":
        gaps = np.ones(n)
    elif arrival == "poisson":
        gaps = rng.exponential(1.0, n)
    elif arrival == "gamma":
        if burstiness <= 0:
            raise ValueError(f"burstiness {burstiness} must be > 0 (the gaps' coefficient of variation; 1 = Poisson)")
        shape = 1.0 / burstiness ** 2
        gaps = rng.gamma(shape, 1.0 / shape, n)
    else:
        raise ValueError(f"arrival {arrival!r} unknown: use 'poisson', 'constant' or 'gamma'")
    gaps = gaps / gaps.mean() / rate_per_s
    offsets = np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    return offsets


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
    mean_gap_ms: float
    client_bound: bool
    valid: bool
    notes: list[str] = field(default_factory=list)
    server: dict = field(default_factory=dict)  # per-request queue / compute ms and count, from Triton's statistics
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def within(self, slo_ms: float) -> float:
        """Fraction of measured requests answered correctly within ``slo_ms`` (errors and timeouts count as misses)."""
        if not self.n_measured:
            return 0.0
        return sum(1 for x in self.latencies_ms if x <= slo_ms) / self.n_measured

    def as_row(self) -> dict:
        row = {k: v for k, v in asdict(self).items() if k not in ("latency", "latencies_ms", "server", "notes")}
        row.update(self.latency)
        row.update({f"server_{k}": v for k, v in self.server.items()})
        row["notes"] = "; ".join(self.notes)
        return row


def model_stats(url: str, model: str) -> dict:
    """Triton's cumulative statistics of ``model``: count and ns of queue / compute_input / compute_infer / output."""
    host, port = split_url(url)
    host = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{host}:{port}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]["inference_stats"]
    return {k: (int(v.get("count", 0)), int(v.get("ns", 0))) for k, v in stats.items() if isinstance(v, dict)}


def server_split(before: dict, after: dict) -> dict:
    """Per-request queue and compute milliseconds over a run, from two :func:`model_stats` snapshots."""
    d = {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1]) for k in after}
    n = d.get("success", (0, 0))[0]
    if not n:
        return {"requests": 0}
    queue = d.get("queue", (0, 0))[1] / n / 1e6
    compute = sum(d.get(k, (0, 0))[1] for k in ("compute_input", "compute_infer", "compute_output")) / n / 1e6
    return {"requests": n, "queue_ms": round(queue, 4), "compute_ms": round(compute, 4),
            "compute_infer_ms": round(d.get("compute_infer", (0, 0))[1] / n / 1e6, 4)}


def _run_async(make_coroutine):
    """``asyncio.run`` of a fresh coroutine; from inside a running loop (a Jupyter kernel) it runs in its own thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    import threading

    out = {}

    def target():
        try:
            out["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    worker = threading.Thread(target=target, name="workbench-open-loop")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


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
        >>> r.latency["latency_p99_ms"], r.client_bound
    """
    import numpy as np

    host, port = split_url(url)
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise ValueError(f"n_requests {n_requests} must be 1..{MAX_REQUESTS}")
    if timeout_s <= 0 or warmup_s < 0:
        raise ValueError(f"timeout_s ({timeout_s}) must be > 0 and warmup_s ({warmup_s}) >= 0")
    offsets = schedule(rate_per_s, n_requests, arrival, burstiness, seed)
    bodies = [infer_body(make_inputs(i)) for i in range(n_requests)]
    try:
        before = model_stats(url, model)
    except OSError as exc:
        raise LoadError(f"no Triton model {model!r} at {url} ({exc}): start the server first "
                        f"(workbench.serving.serve_check.TritonServer) and check the model name") from exc
    wall_limit = float(offsets[-1]) + timeout_s
    import gc

    gc.collect()
    gc.disable()  # a collection pause in the middle of the schedule would show up as send lag
    try:
        sent, done, outcome = _run_async(lambda: run_schedule(host, port, model, bodies, offsets, timeout_s,
                                                              wall_limit, min(connections, n_requests)))
    finally:
        gc.enable()
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
    offered = rate_per_s
    achieved = (len(went) - 1) / span_sent if span_sent > 0 else 0.0
    finished = done[measured][ok]
    throughput = float(ok.sum() / (finished.max() - offsets[measured[0]])) if ok.any() else 0.0
    mean_gap_ms = float(span_sched / (len(measured) - 1) * 1e3)
    lag_p99 = float(np.percentile(lag, 99)) if len(lag) else float("inf")
    scheduled_rate = (len(measured) - 1) / span_sched if span_sched > 0 else float("inf")
    client_bound = bool(lag_p99 > 0.1 * mean_gap_ms or achieved < 0.97 * scheduled_rate or len(went) < len(measured))
    if client_bound:
        notes.append(f"client-bound: send lag p99 {lag_p99:.2f} ms vs mean gap {mean_gap_ms:.2f} ms, sent at "
                     f"{achieved:.1f}/s of {offered:.1f}/s offered; the point is not valid: use fewer requests in "
                     f"flight, a lower rate, or a less loaded machine")
    errors = int(sum(1 for o in out if o not in ("ok", "timeout", "unsent")))
    timeouts = int(sum(1 for o in out if o in ("timeout", "unsent")))
    if errors:
        kinds = sorted({o for o in out if o not in ("ok", "timeout", "unsent")})
        notes.append(f"{errors} errors ({', '.join(kinds)})")
    # Misses (errors, timeouts) are kept as +inf so `within(slo)` counts them as late.
    all_lat = [float(x) if o else float("inf") for x, o in zip(lat, ok)]
    return LoadResult(
        model=model, arrival=arrival, offered_rate_per_s=round(float(offered), 3), achieved_rate_per_s=round(float(achieved), 3),
        throughput_per_s=round(throughput, 3), n_requests=n_requests, n_warmup=n_requests - len(measured),
        n_measured=len(measured), n_ok=int(ok.sum()), errors=errors, timeouts=timeouts,
        latency=percentiles(lat_ok), latency_mean_ms=round(float(lat_ok.mean()), 3) if len(lat_ok) else None,
        send_lag_max_ms=round(float(lag.max()), 3) if len(lag) else float("inf"), send_lag_p99_ms=round(lag_p99, 3),
        send_lag_p50_ms=round(float(np.percentile(lag, 50)), 3) if len(lag) else float("inf"),
        mean_gap_ms=round(mean_gap_ms, 3), client_bound=client_bound, valid=not client_bound, notes=notes,
        server=server_split(before, after), latencies_ms=all_lat)


__all__ = ["open_loop", "LoadResult", "LoadError", "schedule", "percentiles", "model_stats", "server_split",
           "split_url", "infer_body"]
