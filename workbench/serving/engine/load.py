"""``workbench load`` on an engine bundle: vLLM on loopback, a ladder of Poisson rates driven by AIPerf, the
workbench's own stream client on the same schedule as the cross-check, one ``scenario: load-engine`` row per rate.

Per rate, the same prompts at the same absolute send offsets go through AIPerf (pinned to the client core) and through
the own client (this process pinned to the same core for the run), one after the other, the engine's prefix cache
reset before each (so the second client does not find the first one's prompts cached); which goes first alternates
from rate to rate. The row's latency columns are AIPerf's (TTFT, ITL, TPOT, e2e: mean / p50 / p99 with sample
counts); ``own_*`` columns are the own client's, ``own_meets_slo`` judges its run by the row's rule (so a reader
sees whether both runs found the engine keeping up) and ``aiperf_vs_own_ttft_p50_diff_pct`` compares the two. SLO:
a point meets it when no request failed and at least ``attainment`` of requests had TTFT <= ``slo_ttft_ms`` and
ITL <= ``slo_itl_ms`` (AIPerf's goodput over its request throughput: TTFT p99 and ITL p99 within the SLO, defined at
any sample count); goodput climbs the ladder and stops at the first miss
(:func:`workbench.serving.load.sweep.goodput_of`).

Cost per rate: $ per 1M input tokens (prompt tokens served per second), per 1M cached input tokens (prompt tokens
that hit vLLM's prefix cache per second, read from its ``/metrics`` counters: None when none hit) and per 1M output
tokens, each as the instance's price over that token rate (:func:`workbench.measure.cost.usd_per_1m_tokens`).

Workloads: the prompts are one named request shape (:mod:`workbench.serving.engine.workloads`: chat, long prompt /
short answer, the reverse, a shared system prompt), and every row carries its name and token counts, so $ per 1M
input and output tokens are read per shape. The config search over engine arguments is
:mod:`workbench.serving.engine.search`.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.serving.engine.workloads import Workload, get_workload, make_prompts

DEFAULT_NEW_TOKENS = 32
DEFAULT_PROMPT_TOKENS = 128
DEFAULT_REQUESTS = 40
SCENARIO = "load-engine"


@contextmanager
def pinned(cpus):
    """This process on ``cpus`` for the block (the own client), its previous affinity restored after."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def engine_counters(url: str) -> dict:
    """vLLM's prefix-cache and token counters from ``/metrics`` (Prometheus text), summed over label sets."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for name in ("prefix_cache_queries", "prefix_cache_hits", "prompt_tokens", "generation_tokens"):
        vals = re.findall(rf"^vllm:{name}_total(?:{{[^}}]*}})? ([0-9.eE+-]+)$", text, re.M)
        out[name] = sum(float(v) for v in vals) if vals else None
    return out


def reset_prefix_cache(url: str) -> bool:
    """Empty vLLM's prefix cache (dev-mode endpoint); False when the server does not offer it."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/reset_prefix_cache", method="POST"), timeout=30):
            return True
    except OSError:
        return False


def _diff(after: dict, before: dict, key: str):
    a, b = after.get(key), before.get(key)
    return None if a is None or b is None else a - b


def cost_columns(price, rate_per_s: float, prompt_tokens: float, output_tokens_per_s, cached_tokens_per_s) -> dict:
    from workbench.measure.cost import usd_per_1m_tokens

    def usd(tps):
        return round(usd_per_1m_tokens(price.usd_per_hour, tps), 4) if tps else None

    return {"instance": price.instance, "usd_per_hour": price.usd_per_hour, "price_date": price.date,
            "input_tokens_per_s": round(rate_per_s * prompt_tokens, 2),
            "cached_input_tokens_per_s": cached_tokens_per_s,
            "usd_per_1m_input_tokens": usd(rate_per_s * prompt_tokens),
            "usd_per_1m_cached_input_tokens": usd(cached_tokens_per_s),
            "usd_per_1m_output_tokens": usd(output_tokens_per_s)}


LATENCY_PREFIXES = ("ttft", "itl", "tpot", "e2e")


def metric_columns(metrics: dict, prefixes: tuple = LATENCY_PREFIXES) -> dict:
    """The own client's metric columns whose names start with ``prefixes`` (default: the request latencies, TTFT /
    ITL / TPOT / e2e percentiles and their sample counts), without the explanatory ``*_note`` entries."""
    return {k: v for k, v in metrics.items() if k.startswith(prefixes) and not k.endswith("_note")}


@dataclass
class ClientRun:
    """One client's run of a point's schedule: its row ``columns``, the share of requests within the SLO, failed
    requests, the engine's prefix-cache counter differences over the run and the span its requests were served in.
    ``alone``: the columns a row measured by this client alone takes in place of AIPerf's."""

    columns: dict
    share: float
    errors: int
    hits: float | None
    queries: float | None
    span: float | None
    alone: dict = field(default_factory=dict)


def _counted(server, run: Callable):
    """``run()`` after a prefix-cache reset (so no client finds the other's prompts cached), with the engine's
    counters read around it and the server checked alive after: (result, prefix-cache hits, queries)."""
    reset_prefix_cache(server.url)
    before = engine_counters(server.url)
    result = run()
    after = engine_counters(server.url)
    server.check_alive()
    return result, _diff(after, before, "prefix_cache_hits"), _diff(after, before, "prefix_cache_queries")


def _aiperf_side(server, tokenizer_dir: Path, prompts, offsets, new_tokens, slo_ttft_ms, slo_itl_ms, client_cpus,
                 out_dir: Path) -> ClientRun:
    from workbench.serving.engine.aiperf import run_aiperf

    ai, hits, queries = _counted(server, lambda: run_aiperf(server.url, tokenizer_dir, prompts, offsets, new_tokens,
                                                            out_dir, slo_ttft_ms, slo_itl_ms, cpus=client_cpus))
    good, thr = ai.get("goodput_per_s"), ai.get("requests_per_s")
    return ClientRun({**{k: v for k, v in ai.items() if k != "aiperf_export"}, "client": "aiperf"},
                     (good / thr) if good is not None and thr else 0.0, ai.get("errors") or 0, hits, queries,
                     (len(offsets) / thr) if thr else None)


def _own_side(server, prompts, offsets, new_tokens, slo_ttft_ms, slo_itl_ms, attainment, client_cpus) -> ClientRun:
    """The own client (this process pinned to the client core): ``own_*`` columns and ``own_meets_slo`` (its run
    judged by the row's rule)."""
    from workbench.serving.engine.openai_client import run_schedule

    def run():
        with pinned(client_cpus):
            return run_schedule(server.url, prompts, offsets, new_tokens)

    own, hits, queries = _counted(server, run)
    m = own.metrics
    cols = metric_columns(m)
    share = own.within(slo_ttft_ms, slo_itl_ms)
    columns = {**{f"own_{k}": v for k, v in cols.items()}, "own_errors": own.errors,
               "own_client_cpu_share": round(own.client_cpu_s / own.wall_s, 3),
               "own_send_lag_p99_ms": own.send_lag_p99_ms, "own_within_slo": round(share, 4),
               "own_meets_slo": not own.errors and share + 1e-9 >= attainment}
    alone = {**cols, "client": "own", "output_tokens_per_s": m.get("output_tokens_per_s_aggregate"),
             "ttft_samples": m.get("n_requests"), "itl_samples": m.get("itl_samples")}
    return ClientRun(columns, share, own.errors, hits, queries, own.wall_s, alone)


def measure_point(server, tokenizer_dir: Path, prompts: list[str], prompt_lens: list[int], offsets, new_tokens: int,
                  slo_ttft_ms: float, slo_itl_ms: float, attainment: float, client_cpus, out_dir: Path,
                  price=None, own_client: bool = True, use_aiperf: bool = True, aiperf_first: bool = True) -> dict:
    """One rate: AIPerf and the own client on the same schedule, one after the other (``aiperf_first`` says which
    goes first: callers alternate it from rate to rate, so neither client always meets the engine the other just
    left), the prefix cache reset before each; the row's columns. Without AIPerf (the config search's quick climbs)
    the own client's figures are the row's."""
    from workbench.serving.load.sweep import slo_outcome

    if not (use_aiperf or own_client):
        raise ValueError("measure with AIPerf, the own client, or both")
    span = float(offsets[-1]) if len(offsets) > 1 else 1.0
    rate = (len(offsets) - 1) / span if span > 0 else None

    ai = mine = None
    for side in ("aiperf", "own") if aiperf_first else ("own", "aiperf"):
        if side == "aiperf" and use_aiperf:
            ai = _aiperf_side(server, tokenizer_dir, prompts, offsets, new_tokens, slo_ttft_ms, slo_itl_ms,
                              client_cpus, out_dir)
        elif side == "own" and own_client:
            mine = _own_side(server, prompts, offsets, new_tokens, slo_ttft_ms, slo_itl_ms, attainment, client_cpus)
    judged = ai if ai is not None else mine   # AIPerf's figures are the row's whenever it ran
    row: dict = dict(ai.columns) if ai is not None else {}
    if mine is not None:
        row.update(mine.columns)
        if ai is not None:
            a, o = row.get("ttft_ms_p50"), mine.alone.get("ttft_ms_p50")
            row["aiperf_vs_own_ttft_p50_diff_pct"] = round(100 * (a - o) / o, 2) if a is not None and o else None
            row["client_order"] = "aiperf,own" if aiperf_first else "own,aiperf"
        else:
            row.update(mine.alone)
    hits, queries, served_span = judged.hits, judged.queries, judged.span
    row["prefix_cache_hit_rate"] = round(hits / queries, 4) if hits is not None and queries else None
    cached_tps = round(hits / served_span, 2) if hits and served_span else None
    # the engine clients send on time (lag reported)
    outcome = slo_outcome(True, judged.errors, judged.share + 1e-9, attainment)
    row.update(slo_ttft_ms=slo_ttft_ms, slo_itl_ms=slo_itl_ms, slo_metric="ttft+itl",
               slo_attainment=round(judged.share, 4), slo_outcome=outcome, meets_slo=outcome == "pass",
               offered_rate_per_s=round(rate, 4), n_requests=len(prompts),
               prompt_len=round(sum(prompt_lens) / len(prompt_lens), 1), max_new_tokens=new_tokens)
    if price is not None and rate:
        served_rate = row.get("requests_per_s") or rate
        row.update(cost_columns(price, served_rate, row["prompt_len"], row.get("output_tokens_per_s"), cached_tps))
    return row


@dataclass
class EngineLoadResult:
    slo_ttft_ms: float
    slo_itl_ms: float
    rows: list[dict]
    goodput_per_s: float | None
    startup_s: float | None
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        fmt = (lambda v: f"{v:9.2f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>9}")
        keys = ("ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "itl_ms_p99", "output_tokens_per_s", "own_ttft_ms_p50",
                "usd_per_1m_output_tokens")
        lines = [f"{'rate/s':>8} " + " ".join(f"{k[:9]:>9}" for k in keys) + "  within  SLO"]
        for r in self.rows:
            lines.append(f"{r['offered_rate_per_s']:8.2f} " + " ".join(fmt(r.get(k)) for k in keys)
                         + f"  {r.get('slo_attainment', 0):6.1%}  {'yes' if r.get('meets_slo') else 'no'}")
        lines.append(f"ms; SLO TTFT <= {self.slo_ttft_ms} ms and ITL <= {self.slo_itl_ms} ms; goodput "
                     f"{self.goodput_per_s}/s; engine start-up {self.startup_s} s")
        return "\n".join(lines + self.notes)


def sweep_engine(bundle: str | Path, slo_ttft_ms: float, slo_itl_ms: float, rates, new_tokens: int = DEFAULT_NEW_TOKENS,
                 prompt_tokens: int = DEFAULT_PROMPT_TOKENS, n_requests: int = DEFAULT_REQUESTS,
                 shared_prefix_tokens: int = 0, attainment: float = 0.99, table=None, engine_args=None,
                 instance: str = "c7i.large", own_client: bool = True, use_aiperf: bool = True, server=None,
                 progress: Callable[[str], None] | None = None, row: dict | None = None,
                 workload: str | Workload | None = None) -> EngineLoadResult:
    """Serve the engine bundle on vLLM and measure each rate (see the module doc). ``server``: an already started
    :class:`~workbench.serving.engine.server.VllmServer` to reuse (the caller stops it); otherwise one is started
    with ``engine_args`` (default: the bundle's) and always stopped. ``workload``: a named request shape
    (:data:`~workbench.serving.engine.workloads.WORKLOADS`: chat, long-prompt, long-answer, shared-prefix) in place
    of ``prompt_tokens`` / ``new_tokens`` / ``shared_prefix_tokens``; every row carries its name and token counts."""
    import tempfile

    from workbench.measure.cost import get_price
    from workbench.serving.engine.export import checked_engine_manifest
    from workbench.serving.engine.server import split_cpus, start_server
    from workbench.serving.load.schedule import schedule
    from workbench.serving.load.sweep import goodput_of

    bundle = Path(bundle)
    if workload is not None:
        wl = get_workload(workload) if isinstance(workload, str) else workload
    else:
        wl = Workload("custom", prompt_tokens, new_tokens, shared_prefix_tokens)
    prompt_tokens, new_tokens, shared_prefix_tokens = wl.prompt_tokens, wl.new_tokens, wl.shared_prefix_tokens
    if slo_ttft_ms <= 0 or slo_itl_ms <= 0 or not 0 < attainment <= 1 or new_tokens < 2 or n_requests < 2:
        raise ValueError(f"SLOs ({slo_ttft_ms}, {slo_itl_ms} ms) must be > 0, attainment ({attainment}) in (0, 1], "
                         f"new tokens ({new_tokens}) >= 2 (ITL needs two), requests ({n_requests}) >= 2")
    if not rates or min(rates) <= 0:
        raise ValueError(f"rates {rates}: give one or more offered rates per second > 0 (--rates 0.5,1,2)")
    manifest = checked_engine_manifest(bundle)
    ckpt = bundle / "checkpoint"
    engine_cpus, client_cpus, cpu_note = split_cpus()
    price = get_price(instance)
    prompts, lens = make_prompts(ckpt, n_requests, prompt_tokens, shared_prefix_tokens)
    base = {"scenario": SCENARIO, "bundle": str(bundle), "model": manifest["name"], "engine": "vllm",
            "variant_id": manifest["variant"]["variant_id"], "variant": manifest["variant"]["variant"],
            "precision": manifest["checkpoint"]["precision"], **wl.columns(),
            "engine_cpus": len(engine_cpus), "client_cpus": len(client_cpus), "arrival": "poisson", **(row or {})}
    rows = []
    with tempfile.TemporaryDirectory(prefix="workbench-engine-load-") as tmp:
        own_server = server is None
        server = server or start_server(bundle, Path(tmp) / "vllm.log", engine_args, cpus=engine_cpus)
        try:
            if own_server:
                server.__enter__()
            base["engine_args"] = server.args.label()
            base["engine_startup_s"] = server.startup_s
            for k, rate in enumerate(sorted(float(r) for r in rates)):
                offsets = schedule(rate, n_requests, "poisson", seed=k)
                t0 = time.perf_counter()
                point = measure_point(server, ckpt, prompts, lens, offsets, new_tokens, slo_ttft_ms, slo_itl_ms,
                                      attainment, client_cpus, Path(tmp) / f"rate{k}", price, own_client,
                                      use_aiperf, aiperf_first=k % 2 == 0)
                point["offered_rate_per_s"] = rate
                point["point_wall_s"] = round(time.perf_counter() - t0, 1)
                r = {**base, **point, **({"notes": cpu_note} if cpu_note else {})}
                rows.append(table.append(r) if table is not None else r)
                if progress:
                    progress(f"{rate:.2f}/s: TTFT p50 {r.get('ttft_ms_p50')} ms p99 {r.get('ttft_ms_p99')} ms, ITL p99 "
                             f"{r.get('itl_ms_p99')} ms, {r['slo_attainment']:.1%} within SLO (own client TTFT p50 "
                             f"{r.get('own_ttft_ms_p50')} ms); AIPerf CPU {r.get('aiperf_cpu_share')} of its core")
        finally:
            if own_server:
                server.stop()
    good = goodput_of(rows)
    notes = [] if good is not None else [f"no rate met the SLO (lowest {min(rates)}/s)"]
    return EngineLoadResult(slo_ttft_ms, slo_itl_ms, rows, good, base.get("engine_startup_s"),
                            notes + ([cpu_note] if cpu_note else []))


__all__ = ["sweep_engine", "measure_point", "ClientRun", "metric_columns", "LATENCY_PREFIXES", "make_prompts",
           "engine_counters", "reset_prefix_cache", "EngineLoadResult", "SCENARIO", "DEFAULT_NEW_TOKENS", "DEFAULT_PROMPT_TOKENS",
           "DEFAULT_REQUESTS"]
