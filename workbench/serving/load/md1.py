"""The load generator held to queueing theory: M/D/1 mean and tail, and the coordinated-omission stall check.

A one-instance, no-batching model with a fixed service time S (:mod:`workbench.serving.load.sleeper`) under Poisson
arrivals is an M/D/1 queue. Like is compared with like:

- **Per request**: each request's M/D/1 waiting time on the *very arrivals sent* (Lindley's recursion
  W_n = max(0, W_{n-1} + S - gap_n) over the actual send times), plus S, what the client and HTTP add outside the
  server (``overhead_ms``: one request at a time, client-measured end to end minus Triton's S for the same
  requests) and its own send lag (latency runs from the scheduled time). Mean, p90 and p99 of that against the
  measured ones: replaying the run's own arrivals leaves no sampling error between model and measurement (a few
  hundred Poisson arrivals at rho 0.9 have a mean wait tens of percent away from the long-run formula).
- The long-run Pollaczek-Khinchine mean, S + rho*S / (2(1 - rho)) (+ overhead + mean lag), is reported beside it.
- **Stall**: the same replay with one request's service lengthened by the stall predicts every later latency; each
  request scheduled during the stall must show it (finish after the stall ends), and the p99 must move with it.
"""
from __future__ import annotations


def md1_mean_ms(service_ms: float, rho: float) -> float:
    """Mean time in system of an M/D/1 queue: service plus the Pollaczek-Khinchine wait rho*S / (2(1 - rho))."""
    if not 0 <= rho < 1:
        raise ValueError(f"utilisation {rho} must be in [0, 1): the queue grows without bound at or above 1")
    return service_ms + rho * service_ms / (2 * (1 - rho))


def lindley_waits_ms(arrivals_s, service_ms, extra_ms=None):
    """Waiting time (ms) of each arrival in a FIFO single server with service ``service_ms`` (plus ``extra_ms[i]``
    for request i, e.g. a stall), arrivals in seconds, ascending."""
    import numpy as np

    t = np.asarray(arrivals_s, float) * 1e3
    service = np.full(len(t), float(service_ms)) + (0.0 if extra_ms is None else np.asarray(extra_ms, float))
    w = np.zeros(len(t))
    for i in range(1, len(t)):   # sequential by nature; 20k requests at most
        w[i] = max(0.0, w[i - 1] + service[i - 1] - (t[i] - t[i - 1]))
    return w


def predicted_latencies_ms(res, service_ms: float, overhead_ms: float, extra_ms=None):
    """(measured, predicted) latency in ms of each measured, answered request of ``res`` (a ``LoadResult``), the
    prediction being lag + overhead + S + the Lindley wait on the run's actual send times."""
    import numpy as np

    sched, sent, done = (np.asarray(x, float) for x in (res.scheduled_s, res.sent_s, res.done_s))
    if np.isnan(sent).any():
        raise ValueError("some requests were never sent: the run is client-limited, nothing to compare")
    order = np.argsort(sent, kind="stable")
    waits = np.empty(len(sent))
    extra = None if extra_ms is None else np.asarray(extra_ms, float)[order]
    waits[order] = lindley_waits_ms(sent[order], service_ms, extra)
    measured_idx = np.flatnonzero((sched >= sched[len(sched) - res.n_measured]) & ~np.isnan(done))
    measured = (done[measured_idx] - sched[measured_idx]) * 1e3
    predicted = (sent[measured_idx] - sched[measured_idx]) * 1e3 + overhead_ms + service_ms + waits[measured_idx]
    return measured, predicted


def client_overhead_ms(url: str, model: str, make_inputs, n: int = 40) -> dict:
    """What the client and HTTP add outside the server, measured the way the load runs measure: ``n`` requests one
    at a time through the pinned client, median end to end, minus Triton's own per-request time for them."""
    from workbench.serving.load.client import model_stats, server_split
    from workbench.serving.load.sweep import sync_capacity

    before = model_stats(url, model)
    cap = sync_capacity(url, model, make_inputs, n=n, warmup=0)
    server = server_split(before, model_stats(url, model))
    return {"overhead_ms": round(cap["sync_latency_p50_ms"] - server["compute_ms"], 3),
            "sync_latency_p50_ms": cap["sync_latency_p50_ms"], "sync_service_ms": server["compute_ms"]}


def md1_check(res, service_ms: float, overhead_ms: float) -> dict:
    """Mean and tail (p90 / p99) errors in percent of one open-loop run against M/D/1 replayed on its own arrivals,
    and the long-run P-K mean beside them."""
    import numpy as np

    measured, predicted = predicted_latencies_ms(res, service_ms, overhead_ms)
    rho = res.achieved_rate_per_s * service_ms / 1e3
    pk = (md1_mean_ms(service_ms, rho) + overhead_ms + res.send_lag_mean_ms) if rho < 1 else None
    m, p = float(measured.mean()), float(predicted.mean())
    out = {"rho": round(rho, 4), "service_ms": round(service_ms, 3), "overhead_ms": round(overhead_ms, 3),
           "send_lag_mean_ms": res.send_lag_mean_ms, "mean_ms": round(m, 3), "predicted_mean_ms": round(p, 3),
           "mean_error_pct": round(100 * (m - p) / p, 2), "pk_mean_ms": round(pk, 3) if pk is not None else None,
           "pk_mean_error_pct": round(100 * (m - pk) / pk, 2) if pk else None}
    for q in (90, 99):
        m, p = float(np.percentile(measured, q)), float(np.percentile(predicted, q))
        out[f"p{q}_ms"], out[f"predicted_p{q}_ms"] = round(m, 3), round(p, 3)
        out[f"p{q}_error_pct"] = round(100 * (m - p) / p, 2)
    out["n"] = len(measured)
    return out


def stall_check(res, stall_index: int, stall_ms: float, service_ms: float, overhead_ms: float,
                slack_ms: float = 20.0) -> dict:
    """Whether a ``stall_ms`` stall of the model, starting when request ``stall_index`` reached it, shows in the
    latencies: every request scheduled during the stall finishes after it ends (minus ``slack_ms``), and the measured
    p99 is within 25% of the replay's p99 with the stall (and well above the p99 the replay predicts without it)."""
    import numpy as np

    sched, done = np.asarray(res.scheduled_s, float), np.asarray(res.done_s, float)
    start = sched[stall_index]
    during = np.flatnonzero((sched >= start) & (sched < start + stall_ms / 1e3))
    late = [int(i) for i in during if not done[i] * 1e3 >= (start * 1e3 + stall_ms - slack_ms)]
    extra = np.zeros(len(sched))
    extra[stall_index] = stall_ms
    measured, predicted = predicted_latencies_ms(res, service_ms, overhead_ms, extra)
    _, without = predicted_latencies_ms(res, service_ms, overhead_ms)
    p99, p99_pred, p99_without = (float(np.percentile(x, 99)) for x in (measured, predicted, without))
    shown = not late and len(during) > 0
    moved = abs(p99 - p99_pred) <= 0.25 * p99_pred and p99 > p99_without + stall_ms / 4
    return {"stall_ms": stall_ms, "scheduled_during_stall": len(during), "not_showing_it": late[:10],
            "p99_ms": round(p99, 3), "predicted_p99_ms": round(p99_pred, 3),
            "predicted_p99_without_stall_ms": round(p99_without, 3), "every_request_shows_it": shown,
            "p99_moved": bool(moved), "detected": bool(shown and moved)}


__all__ = ["md1_mean_ms", "lindley_waits_ms", "client_overhead_ms", "predicted_latencies_ms", "md1_check", "stall_check"]
