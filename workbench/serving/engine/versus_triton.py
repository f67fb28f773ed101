"""The engine against the serving path it replaces: the Triton Python model streaming a causal LM's full-sequence ONNX
graph (:mod:`workbench.serving.load.lm`: every token recomputes the whole prefix, no KV cache), on the same model, the
same prompt and answer lengths, the same single server core, judged by the engine search's SLO.

The Triton path is measured near idle: its synchronous capacity first (one stream at a time, as ``sweep_lm`` always
does), then a few streams at half that rate. A request meets the SLO when its TTFT and its mean inter-token latency
(TPOT: (end - first token) / (tokens - 1), AIPerf's per-request ITL) are both within the limits. Load only adds
latency, so when requests miss the SLO this close to idle, no rate meets it: the goodput is 0 and the engine's
advantage has no finite ratio. The per-token latencies of both near idle are then the finite comparison, and are
reported either way.
"""
from __future__ import annotations

from pathlib import Path


def triton_python_near_idle(task, work: Path, workload, slo_ttft_ms: float, slo_itl_ms: float, threads: int = 1,
                            n_requests: int = 3, attainment: float = 0.99, progress=None,
                            overwrite: bool = False) -> dict:
    """Export ``task``'s model as the full-sequence Triton bundle (prompts of the workload's length), stream
    ``n_requests`` at half its synchronous capacity, and judge them by the SLO (module doc). Returns the point's
    TTFT / TPOT figures, the share of requests within the SLO and ``goodput_per_s`` (0.0 when that share is below
    ``attainment``, the search's: no rate can do better than near idle; None when it passes, as one point cannot
    place the limit). ``overwrite``: replace the bundle an earlier run left in ``work``."""
    from workbench.serving.load.demo_bundles import causal_lm_bundle
    from workbench.serving.load.lm import sweep_lm

    if slo_ttft_ms <= 0 or slo_itl_ms <= 0:
        raise ValueError(f"SLO TTFT {slo_ttft_ms} ms / ITL {slo_itl_ms} ms must be > 0: pass the engine search's")
    n = workload.prompt_tokens
    # the export's validation grid: the smallest it takes (3 batch sizes x 3 lengths), up to the prompt length
    bundle = causal_lm_bundle(Path(work), seq_len=n, threads=threads, grid=((1, 2, 3), (max(2, n // 4), n // 2, n)),
                              task=task, overwrite=overwrite)
    res = sweep_lm(bundle, slo_ttft_ms, new_tokens=workload.new_tokens, n_requests=n_requests, warmup_s=0.0,
                   fractions=(0.5,), progress=progress)
    row = res.rows[0]
    point = res.points[0]
    within = [t <= slo_ttft_ms and (tp is None or tp <= slo_itl_ms) for t, tp in zip(point.ttft_ms, point.tpot_ms)]
    share = sum(within) / point.n_measured if point.n_measured else 0.0
    return {"bundle": str(bundle), "prompt_tokens": n, "new_tokens": workload.new_tokens, "threads": threads,
            "sync_latency_p50_ms": row.get("sync_latency_p50_ms"), "capacity_per_s": row.get("capacity_per_s"),
            "offered_rate_per_s": row.get("offered_rate_per_s"), "n_measured": point.n_measured,
            "errors": row.get("errors"), "ttft_ms_p50": row.get("ttft_p50_ms"), "tpot_ms_p50": row.get("tpot_p50_ms"),
            "itl_ms_p50": row.get("itl_p50_ms"), "slo_ttft_ms": slo_ttft_ms, "slo_itl_ms": slo_itl_ms,
            "within_slo_share": round(share, 4), "goodput_per_s": 0.0 if share < attainment else None}


__all__ = ["triton_python_near_idle"]
