"""A load run's figures as plain JSON-ready dicts: one searched bundle (its baselines, confirmed winner, every climb's
points and what bound each climb), a streamed LM sweep, and the load benchmark's headline over all of them.

Pure functions of :class:`~workbench.serving.load.config_search.SearchResult` / ``LmLoadResult`` and the honesty
checks' dicts: nothing here measures; a figure the run did not measure stays None."""
from __future__ import annotations

CURVE_KEYS = ("offered_rate_per_s", "achieved_rate_per_s", "latency_p50_ms", "latency_p99_ms", "slo_attainment",
              "slo_outcome", "client_cpu_share", "send_lag_p99_ms", "server_queue_ms", "server_compute_ms",
              "server_mean_batch", "server_exec_share")
LM_POINT_KEYS = ("offered_rate_per_s", "achieved_rate_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
                 "tpot_p50_ms", "itl_p90_ms", "n_measured", "slo_outcome", "slo_percentile", "client_cpu_share")
BUSY = 0.85   # the model executing this share of the time per instance: the server is the bound


def climb_curve(cand) -> list[dict]:
    """Every point of a candidate's climb: rate, latency, outcome and the figures that say which resource binds."""
    return [{k: r.get(k) for k in CURVE_KEYS} for r in cand.rows] if cand else []


def binding(cand) -> str | None:
    """Which resource ended the candidate's climb, read from its highest-rate failing point (else its last point):
    the load client (client-limited), the server (model busy >= 85% of the time on every instance), or queueing."""
    if not cand or not cand.rows:
        return None
    ends = [r for r in cand.rows if r.get("slo_outcome") != "pass"] or cand.rows[-1:]
    r = max(ends, key=lambda x: x["offered_rate_per_s"])
    if r.get("slo_outcome") == "client-limited":
        return f"client (CPU share {r.get('client_cpu_share')}, send lag p99 {r.get('send_lag_p99_ms')} ms)"
    instances = cand.config.instance_count
    share = r.get("server_exec_share")
    if share is not None and share >= BUSY * instances:
        return (f"server (model executing {share:.2f} of the time over {instances} instance(s) at "
                f"{r['offered_rate_per_s']}/s; queue {r.get('server_queue_ms')} ms)")
    return (f"queue/latency (model executing {share} of the time, queue {r.get('server_queue_ms')} ms, batch "
            f"{r.get('server_mean_batch')}, at {r['offered_rate_per_s']}/s)")


def search_summary(result) -> dict:
    """A ``search_config`` result's figures: goodput of the exported config, no batching, the search's winner and its
    confirmation climb; the best baseline and the confirmed / best-baseline ratio; what bound each climb; curves."""
    win, conf, exp, nob, base = (result.winner, result.confirmed, result.exported, result.no_batching,
                                 result.best_baseline)

    def goodput(c):
        return None if c is None else c.goodput_per_s

    def text(c):
        return None if c is None else c.goodput_text

    return {"goodput_exported_rps": goodput(exp), "goodput_no_batching_rps": goodput(nob),
            "goodput_search_winner_rps": goodput(win), "goodput_confirmed_rps": goodput(conf),
            "goodput_best_baseline_rps": goodput(base), "best_baseline": base.stage if base else None,
            "goodput_text": {"exported": text(exp), "no_batching": text(nob), "winner": text(win),
                             "confirmed": text(conf)},
            "searched_over_best_baseline": result.headline_ratio,
            "searched_config": win.config.label() if win else None, "knee_rps": conf.knee_per_s if conf else None,
            "p99_at_goodput_ms": conf.p99_at_goodput_ms if conf else None,
            "p99_at_goodput_exported_ms": exp.p99_at_goodput_ms if exp else None,
            "binding": {"exported": binding(exp), "no_batching": binding(nob), "confirmed": binding(conf)},
            "curves": {f"{c.config.label()} ({c.stage})": climb_curve(c) for c in result.candidates + [conf] if c},
            "candidates": len(result.candidates), "skipped": len(result.skipped),
            "capacity_sync_rps": result.capacity_per_s}


def lm_summary(res) -> dict:
    """A streamed LM sweep's (``sweep_lm``) figures: goodput at the TTFT percentile the samples support, per point
    TTFT / TPOT / ITL and the client's CPU share."""
    return {"new_tokens": res.new_tokens, "slo_ms": res.slo_ms, "goodput_rps": res.goodput_per_s,
            "slo_percentile": res.slo_percentile, "points": [{k: r.get(k) for k in LM_POINT_KEYS} for r in res.rows]}


def _mean_abs(values) -> float | None:
    values = [abs(v) for v in values]
    return round(sum(values) / len(values), 2) if values else None


def headline(bundles: dict, md1: dict, stall: dict | None) -> dict:
    """The load benchmark's headline from the fp32 bundle's ``search_summary`` (``bundles["fp32"]``), the M/D/1 check
    ({rho: figures}; empty when skipped) and the stall check (None when skipped): goodputs, the confirmed / best
    baseline ratio, the client's CPU share at the highest rate offered, M/D/1 mean |error| (mean and p99)."""
    fp32 = bundles["fp32"]
    points = [p for curve in fp32["curves"].values() for p in curve]
    top = max(points, key=lambda p: p["offered_rate_per_s"]) if points else {}
    return {"goodput_default_rps": fp32["goodput_exported_rps"],
            "goodput_no_batching_rps": fp32["goodput_no_batching_rps"],
            "goodput_best_baseline_rps": fp32["goodput_best_baseline_rps"],
            "goodput_search_winner_rps": fp32["goodput_search_winner_rps"],
            "goodput_searched_rps": fp32["goodput_confirmed_rps"],
            "searched_over_best_baseline": fp32["searched_over_best_baseline"],
            "winner_confirmed": fp32["goodput_confirmed_rps"] is not None,
            "client_cpu_share_at_highest_rate": top.get("client_cpu_share"),
            "highest_rate_rps": top.get("offered_rate_per_s"),
            "md1_mean_error_pct": _mean_abs(v["mean_error_pct"] for v in md1.values()),
            "md1_p99_error_pct": _mean_abs(v["p99_error_pct"] for v in md1.values()),
            "co_stall_detected": stall["detected"] if stall else None, "stall": stall}


__all__ = ["climb_curve", "binding", "search_summary", "lm_summary", "headline", "CURVE_KEYS", "LM_POINT_KEYS"]
