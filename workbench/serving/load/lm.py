"""`workbench load` for causal-LM bundles: the bundle's ONNX graph streamed token by token from a real Triton server
(loopback), open-loop streams at a ladder of rates, TTFT / TPOT / ITL per point, and goodput against a TTFT SLO.

Why a separate path from :mod:`workbench.serving.load.sweep`: an LM request is a stream, not one answer, so its
latency is three numbers (time to first token, time per output token, inter-token gaps) and the served model is the
decoupled Python model of :mod:`workbench.serving.load.lm_stream`, not the bundle's request/response twin. Why the SLO is
on TTFT: it is the wait a user sees before anything happens and the number queueing moves first; TPOT/ITL are
reported beside it. The SLO check is "at least ``attainment`` (99%) of measured requests got their first token
within ``slo_ms``", i.e. TTFT p99 <= SLO, under the request path's sample rule: p99 needs >= 200 requests per point;
with fewer, the sweep is judged at the percentile the samples support (p95: 40, p90: 20) and names it. Rates
default to fractions of the synchronous stream capacity (:func:`workbench.serving.load.sweep.capacity`: 1 / the
median end-to-end time of one stream at a time, measured on the server before the points), as the request path does.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)   # of the synchronous capacity; one instance saturates at 1.0
DEFAULT_NEW_TOKENS = 16
POINT_SECONDS = 20.0                          # default requests per rate: this many seconds of arrivals...
MIN_REQUESTS, MAX_REQUESTS = 30, 500          # ...within these bounds
SEARCH_ERROR = ("the serving-config search covers request/response bundles; {bundle} is a causal LM (streamed token "
                "by token): drop --search and read TTFT / TPOT / ITL at each rate")


def lm_graph(manifest: dict) -> str | None:
    """What the bundle's served graph is, from the manifest's tensor specs: ``"full"`` (a causal LM's full-sequence
    forward, which the streaming model drives), ``"kv"`` (a causal LM whose graph takes past-KV inputs) or None
    (a request/response model: a classifier's logits have no sequence axis).

    Read from the graph's inputs and outputs rather than the task name: a local HF model's task is named after its
    folder, while every causal LM takes ``input_ids`` and gives per-position logits (``[seq, vocab]`` per example).
    """
    inputs = {s["name"] for s in manifest.get("inputs") or []}
    outputs = manifest.get("outputs") or []
    logits = next((o for o in outputs if o["name"] == "logits"), outputs[0] if outputs else None)
    if "input_ids" not in inputs or logits is None:
        return None
    per_position = len(logits.get("dims") or []) == 2
    if not per_position and manifest.get("task") != "causal-lm":
        return None
    return "kv" if any(n.startswith(("past_key_values", "past.", "past_")) for n in inputs) else "full"


def check_streamable(bundle: Path, manifest: dict) -> None:
    """Refuse a KV-cache graph with the fix: the streaming model re-runs one full-sequence forward per token and has
    no cache tensors to carry between steps."""
    if lm_graph(manifest) == "kv":
        past = [s["name"] for s in manifest["inputs"] if s["name"].startswith("past")]
        raise ValueError(f"{bundle}'s served graph takes past-KV inputs ({past[0]}, ... {len(past)} in all): the "
                         "streaming model runs a full-sequence graph (one forward per token, no cache). Re-export "
                         "the bundle from the torch variant (export_bundle ships causal LMs without a KV cache) or "
                         "from an ONNX variant exported with ExportOnnxConfig(with_past=False)")


def prompts(bundle: Path) -> list[list[int]]:
    """The reference examples' token ids (padding dropped where an attention mask marks it)."""
    from workbench.serving.bundle.verify import reference_arrays

    inputs, _ = reference_arrays(bundle)
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    out = [[int(t) for t, m in zip(row, mask[k] if mask is not None else [1] * len(row)) if m]
           for k, row in enumerate(ids)]
    if not all(out):
        raise ValueError(f"{bundle}/reference/inputs.npz has an empty prompt: re-export the bundle")
    return out


def slo_percentile(n_measured: int, attainment: float) -> tuple[str, float]:
    """The percentile a goodput judged on ``n_measured`` requests per point can name: the one ``attainment`` asks for
    (0.99: p99) when the samples support it (the workbench's rule, ``timing.MIN_SAMPLES``: p99 needs 200, p95 40,
    p90 20), else the highest of p95 / p90 / p50 they do support. Returns (name, attainment to judge by)."""
    from workbench.measure.timing import min_samples_for

    wanted = attainment * 100
    for rank in sorted({wanted, 99.0, 95.0, 90.0, 50.0}, reverse=True):
        if rank <= wanted and n_measured >= min_samples_for(rank):
            return f"p{rank:g}", rank / 100
    return "p50", 0.5


def requests_for(rate: float) -> int:
    """Default requests at ``rate``: ``POINT_SECONDS`` of arrivals, within [MIN_REQUESTS, MAX_REQUESTS]."""
    return max(MIN_REQUESTS, min(MAX_REQUESTS, round(rate * POINT_SECONDS)))


@dataclass
class LmLoadResult:
    """The streaming sweep: one point (and row) per rate, the goodput against the TTFT SLO."""

    slo_ms: float
    attainment: float
    capacity: dict
    new_tokens: int
    points: list
    rows: list[dict]
    goodput_per_s: float | None
    slo_percentile: str = "p99"     # the TTFT percentile the goodput is judged at (what the samples support)
    climb_end: str = "miss"
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        fmt = (lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}")
        lines = [f"{'offered/s':>10} {'sent/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9} {'TPOT p99':>9} "
                 f"{'ITL p99':>9} {'TTFT<=SLO':>9} outcome"]
        for row in self.rows:
            cells = " ".join(fmt(row.get(k)) for k in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
                                                        "itl_p99_ms"))
            lines.append(f"{row['offered_rate_per_s']:10.2f} {row['achieved_rate_per_s']:8.2f} {cells} "
                         f"{row['slo_attainment']:9.2%} {row['slo_outcome']}")
        from workbench.serving.load.sweep import goodput_text

        lines.append(f"ms; {self.new_tokens} new tokens per request; synchronous stream "
                     f"{self.capacity['sync_latency_p50_ms']} ms end to end ({self.capacity['capacity_per_s']}/s); "
                     f"goodput {goodput_text(self.goodput_per_s, self.climb_end)} at TTFT {self.slo_percentile} <= "
                     f"{self.slo_ms} ms ({self.attainment:.0%} of TTFTs within it; '-': too few requests for that "
                     "percentile)")
        return "\n".join(lines + self.notes)


def sweep_lm(bundle: Path, slo_ms: float, rates=None, new_tokens: int = DEFAULT_NEW_TOKENS, n_requests=None,
             attainment: float = 0.99, arrival: str = "poisson", warmup_s: float = 1.0, table=None,
             progress: Callable[[str], None] | None = None, fractions=DEFAULT_FRACTIONS) -> LmLoadResult:
    """Serve the causal-LM ``bundle`` as a streaming Triton model and measure TTFT / TPOT / ITL at each rate.

    Each point is a ``scenario: "load-stream"`` row appended to ``table`` as soon as it is measured (a server that
    dies mid-sweep ends it with a LoadError; the rows done are kept). Streams always run ``new_tokens`` tokens (no
    EOS stop) so every point compares the same output length. One model instance at the bundle's thread count.
    ``goodput_per_s``: going up the rates, the highest passing point before the first that does not (a miss, or a
    client-limited point, which makes it a lower bound: :func:`workbench.serving.load.sweep.goodput_of`). The SLO
    is a TTFT percentile: the one ``attainment`` asks for when every point has the requests it needs (p99: 200),
    else the highest the smallest point supports (:func:`slo_percentile`), named in ``slo_percentile`` and each row.
    """
    from workbench.serving.bundle.triton_server import TritonServer, triton_distribution
    from workbench.serving.bundle.verify import model_paths
    from workbench.serving.load.client import LoadError
    from workbench.serving.load.config_search import bundle_inputs, exported_config
    from workbench.serving.load.lm_stream import lm_stream_repository
    from workbench.serving.load.schedule import schedule
    from workbench.serving.load.stream import open_loop_stream
    from workbench.serving.load.sweep import capacity, climb_end, goodput_of, rate_ladder, slo_outcome

    if slo_ms <= 0 or not 0 < attainment <= 1 or new_tokens < 1:
        raise ValueError(f"slo_ms ({slo_ms}) must be > 0, attainment ({attainment}) in (0, 1], new tokens "
                         f"({new_tokens}) >= 1")
    manifest, _ = bundle_inputs(bundle)   # refuses a bundle whose files changed since export
    check_streamable(bundle, manifest)
    threads = exported_config(bundle, manifest).threads or 1
    served = manifest.get("served") or {}
    prompt_ids = prompts(bundle)
    base = {"variant_id": served.get("variant_id"), "variant": served.get("variant"), "bundle": str(bundle),
            "model": manifest["name"], "scenario": "load-stream", "batch_size": 1,
            "prompt_len": round(sum(map(len, prompt_ids)) / len(prompt_ids)), "max_new_tokens": new_tokens,
            "threads": threads, "instances": 1, "arrival": arrival}
    name = f"{manifest['name']}-stream"

    def make_body(i: int) -> dict:
        return {"INPUT_IDS": prompt_ids[i % len(prompt_ids)], "MAX_NEW_TOKENS": new_tokens}

    points, rows = [], []
    with tempfile.TemporaryDirectory(prefix="workbench-load-lm-") as tmp:
        dist = triton_distribution()
        backends, repo = lm_stream_repository(model_paths(bundle, manifest)[1], name, Path(tmp), dist,
                                              threads=threads)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            # the warm-up stream pays ORT's first runs
            cap = capacity(server.url, name, lambda i: json.dumps(make_body(i)).encode(), n=3, warmup=1,
                           stream=True, tokens=new_tokens)
            ladder = rate_ladder(rates, cap["capacity_per_s"], fractions)
            sizes = [n_requests or requests_for(rate) for rate in ladder]
            counted = min(int((schedule(r, n, arrival, seed=k) >= warmup_s).sum())
                          for k, (r, n) in enumerate(zip(ladder, sizes)))
            pct, judge_at = slo_percentile(counted, attainment)
            for k, rate in enumerate(ladder):
                res = open_loop_stream(server.url, name, make_body, rate, sizes[k], arrival=arrival,
                                       warmup_s=warmup_s, seed=k)
                share = res.ttft_within(slo_ms)
                outcome = slo_outcome(res.valid, 0, share, judge_at, res.send_lag_high,   # errors: misses in share
                                      res.ttft_within_from_sent(slo_ms))
                row = {**base, **res.as_row(), "slo_ms": slo_ms, "slo_metric": "ttft", "slo_percentile": pct,
                       "slo_attainment": round(share, 5), "slo_outcome": outcome, "meets_slo": outcome == "pass",
                       **cap}
                rows.append(table.append(row) if table is not None else row)
                points.append(res)
                if progress:
                    progress(f"{rate:.2f}/s: TTFT p50 {res.ttft.get('ttft_p50_ms')} ms, TPOT p50 "
                             f"{res.tpot.get('tpot_p50_ms')} ms, {share:.1%} TTFT within {slo_ms} ms"
                             + ("" if res.valid else " (not valid: " + "; ".join(res.notes) + ")"))
                if server.process.poll() is not None:
                    where = f"; the points done are in {table.path}" if table is not None else ""
                    raise LoadError(f"Triton died mid-sweep (exit code {server.process.returncode}){where}. "
                                    f"Server log: {server.log_tail()}")
    good = goodput_of(rows)
    notes = [] if good is not None else [(f"no rate met the SLO: even {ladder[0]}/s had < {judge_at:.0%} of TTFTs "
                                          f"within {slo_ms} ms (or the client was limited)")]
    if judge_at < attainment:
        notes.append(f"judged at TTFT {pct}, not the p{attainment * 100:g} asked for: the smallest point counts "
                     f"{counted} requests (p{attainment * 100:g} needs more; raise --requests)")
    return LmLoadResult(slo_ms=slo_ms, attainment=judge_at, capacity=cap, new_tokens=new_tokens, points=points,
                        rows=rows, goodput_per_s=good, slo_percentile=pct, climb_end=climb_end(rows), notes=notes)


__all__ = ["sweep_lm", "lm_graph", "check_streamable", "prompts", "slo_percentile", "requests_for", "LmLoadResult",
           "SEARCH_ERROR", "DEFAULT_FRACTIONS", "DEFAULT_NEW_TOKENS"]
