"""Trials on a running engine that the cost of serving depends on (used on the search's confirmation server, so they
cost no extra start-up).

**Prefix cache** (:func:`prefix_cache_trial`): the ``shared-prefix`` workload (a system prompt of 400 of 448 tokens)
against the same shape with every prompt distinct, on the same server, at the same rate, distinct measured before
and after the shared run (drift). TTFT p50 shared / distinct is the ratio quoted, under load and idle (one request
at a time). What bounds it: vLLM caches whole KV blocks only (128 tokens on its CPU backend), so a shared part
that is not a whole number of blocks is partly recomputed (224 shared tokens of 256 held one 128-token block:
half the prompt); and TTFT also holds what caching cannot remove: the uncached tokens' prefill, the first decode
step, HTTP and tokenisation, and under load the wait behind other requests' steps on the engine's one core. The
idle TTFT of a prompt as long as the uncached part (``ttft_floor_ms``) is that floor, measured, so the ratio can
be read against the best it could be.

**Cost workloads** (:func:`workload_costs`): each named shape (long prompt / short answer and the reverse) at half
its one-stream rate (1 / its idle end-to-end time; more when that would stretch a point past a minute): a ``load-engine`` row with the workload's name, its input and
output tokens and $ per 1M input / cached input / output tokens at that rate.
"""
from __future__ import annotations

from pathlib import Path

from workbench.serving.engine.workloads import COST_WORKLOADS, Workload, get_workload

CPU_BLOCK_TOKENS = 128   # vLLM's CPU backend's KV block when none is asked for (vllm/platforms/cpu.py)


def _point(server, ckpt: Path, wl: Workload, rate: float, n: int, slo: tuple[float, float], client_cpus, out: Path,
           price=None, seed: int = 0, use_aiperf: bool = False) -> dict:
    from workbench.serving.engine.load import measure_point
    from workbench.serving.load.schedule import schedule

    prompts, lens = wl.prompts(ckpt, n, seed=300 + seed)
    offsets = schedule(rate, n, "poisson", seed=seed)
    row = measure_point(server, ckpt, prompts, lens, offsets, wl.new_tokens, slo[0], slo[1], 0.99, client_cpus, out,
                        price=price, own_client=True, use_aiperf=use_aiperf)
    return {"scenario": "load-engine", "engine_args": server.args.label(), **wl.columns(), **row,
            "offered_rate_per_s": rate}


# The shape of the first trial (224 of 256 tokens shared): with 128-token blocks only one block (half the prompt) can
# hit, which is why it read 0.59. Measured beside the realistic shape to show the block boundary at work.
BLOCK_BOUND_SHAPE = Workload("shared-224-of-256", 256, 16, 224)


def prefix_cache_trial(server, ckpt: Path, rate: float, slo: tuple[float, float], client_cpus, out: Path,
                       n: int = 24, workload: str | Workload = "shared-prefix",
                       compare: Workload | None = BLOCK_BOUND_SHAPE) -> dict:
    """TTFT p50 with a shared system prompt over the same shape with distinct prompts (see the module doc);
    ``compare``: a second shape measured the same way on the same server (its ratio under ``compare_ratio``)."""
    from workbench.serving.engine.search import idle_latency

    shared = get_workload(workload) if isinstance(workload, str) else workload
    distinct = shared.without_prefix()
    plan = [("distinct", distinct), ("shared", shared), ("distinct2", distinct)]
    if compare is not None:
        plan += [("compare-shared", compare), ("compare-distinct", compare.without_prefix())]
    rows = {name: _point(server, ckpt, wl, rate, n, slo, client_cpus, out / f"prefix-{name}", seed=9)
            for name, wl in plan}
    uncached = shared.prompt_tokens - shared.shared_prefix_tokens
    idle = {"distinct": idle_latency(server, ckpt, distinct, client_cpus),
            "shared": idle_latency(server, ckpt, shared, client_cpus),
            "floor": idle_latency(server, ckpt, Workload("uncached-part", uncached, shared.new_tokens), client_cpus)}
    d = (rows["distinct"]["ttft_ms_p50"] + rows["distinct2"]["ttft_ms_p50"]) / 2   # before and after: drift
    s = rows["shared"]["ttft_ms_p50"]
    block = server.args.block_size or CPU_BLOCK_TOKENS
    result = {"prefix_rate_per_s": rate, "prefix_requests": n, "prefix_prompt_tokens": shared.prompt_tokens,
            "prefix_shared_tokens": shared.shared_prefix_tokens,
            "prefix_shared_share": round(shared.shared_prefix_tokens / shared.prompt_tokens, 3),
            "kv_block_tokens": block, "prefix_cacheable_blocks": shared.shared_prefix_tokens // block,
            "prefix_ttft_ms_p50_distinct": round(d, 2), "prefix_ttft_ms_p50_distinct_before_after":
                [rows["distinct"]["ttft_ms_p50"], rows["distinct2"]["ttft_ms_p50"]],
            "prefix_ttft_ms_p50_shared": s, "prefix_cache_hit_rate": rows["shared"].get("prefix_cache_hit_rate"),
            "prefix_cache_ttft_ratio": round(s / d, 3) if d else None,
            "prefix_idle_ttft_ms_p50": {k: v["ttft_ms_p50"] for k, v in idle.items()},
            "prefix_cache_ttft_ratio_idle": round(idle["shared"]["ttft_ms_p50"] / idle["distinct"]["ttft_ms_p50"], 3),
            "ttft_floor_ms": idle["floor"]["ttft_ms_p50"],
            "prefix_cache_ttft_ratio_floor": round(idle["floor"]["ttft_ms_p50"] / idle["distinct"]["ttft_ms_p50"], 3),
            "prefix_trial_rows": rows}
    if compare is not None:
        cs, cd = rows["compare-shared"], rows["compare-distinct"]
        result["compare"] = {"workload": compare.name, "shared_share": round(compare.shared_prefix_tokens /
                                                                             compare.prompt_tokens, 3),
                             "cacheable_blocks": compare.shared_prefix_tokens // block,
                             "ttft_ms_p50_shared": cs["ttft_ms_p50"], "ttft_ms_p50_distinct": cd["ttft_ms_p50"],
                             "hit_rate": cs.get("prefix_cache_hit_rate"),
                             "ratio": round(cs["ttft_ms_p50"] / cd["ttft_ms_p50"], 3) if cd["ttft_ms_p50"] else None}
    return result


def workload_costs(server, ckpt: Path, slo: tuple[float, float], client_cpus, out: Path, price, n: int = 16,
                   workloads=COST_WORKLOADS, use_aiperf: bool = False, max_point_s: float = 60.0) -> list[dict]:
    """One ``load-engine`` row per named workload at half its one-stream rate (1 / idle e2e), or at ``n`` requests
    in ``max_point_s`` where that is more (a 256-token answer takes ~17 s here: half its one-stream rate would spread
    16 requests over 9 minutes), with $ per 1M tokens (module doc). The row says which rate it ran at and why."""
    from workbench.serving.engine.search import idle_latency

    rows = []
    for k, name in enumerate(workloads):
        wl = get_workload(name) if isinstance(name, str) else name
        idle = idle_latency(server, ckpt, wl, client_cpus)
        half, bound = 0.5 / idle["e2e_s_p50"], n / max_point_s
        rate = round(max(half, bound), 3)
        row = _point(server, ckpt, wl, rate, n, slo, client_cpus, out / f"workload-{wl.name}", price, seed=20 + k,
                     use_aiperf=use_aiperf)
        basis = "half of 1 / idle e2e" if half >= bound else f"{n} requests in {max_point_s:.0f} s (above half of 1 / idle e2e)"
        rows.append({**row, "rate_basis": basis, "idle_e2e_s_p50": idle["e2e_s_p50"]})
    return rows


def on_confirmed_engine(out: Path, price, n: int, found: dict, log=lambda message: None):
    """A ``search_engine(on_confirm=...)`` callback running both trials on the confirmed winner's server (no extra
    engine start-up): the cost workloads (``found["workload_rows"]``), then the prefix-cache trial at half the
    winner's goodput (``found["prefix"]``); each under the confirmation's SLO, ``n`` requests a point."""
    from workbench.serving.engine.server import split_cpus

    def trials(server, cand, res) -> None:
        ckpt, slo, client = cand.bundle / "checkpoint", (res.slo_ttft_ms, res.slo_itl_ms), split_cpus()[1]
        log("  cost workloads (long prompt / short answer and the reverse) ...")
        found["workload_rows"] = workload_costs(server, ckpt, slo, client, out, price, n=n)
        rate = max(0.05, round((cand.goodput_per_s or 0.2) / 2, 3))
        log(f"  prefix-cache trial at {rate}/s ...")
        found["prefix"] = prefix = prefix_cache_trial(server, ckpt, rate, slo, client, out, n=n)
        log(f"  prefix-cache TTFT ratio {prefix['prefix_cache_ttft_ratio']} (idle "
            f"{prefix['prefix_cache_ttft_ratio_idle']}, floor {prefix['ttft_floor_ms']} ms)")

    return trials


__all__ = ["prefix_cache_trial", "workload_costs", "on_confirmed_engine", "CPU_BLOCK_TOKENS"]
