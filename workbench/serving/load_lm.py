"""`workbench load` for causal-LM bundles: the bundle's ONNX graph streamed token by token from a real Triton server
(loopback), open-loop streams at a ladder of rates, TTFT / TPOT / ITL per point, and goodput against a TTFT SLO.

Why a separate path from :mod:`workbench.serving.load_sweep`: an LM request is a stream, not one answer, so its
latency is three numbers (time to first token, time per output token, inter-token gaps) and the served model is the
decoupled Python model of :mod:`workbench.serving.lm_stream`, not the bundle's request/response twin. Why the SLO is
on TTFT: it is the wait a user sees before anything happens and the number queueing moves first; TPOT/ITL are
reported beside it. The SLO check is "at least ``attainment`` (99%) of measured requests got their first token
within ``slo_ms``", i.e. TTFT p99 <= SLO, but defined at any request count (a reported p99 needs 200 samples).
Rates default to fractions of the synchronous stream capacity (1 / end-to-end latency of one request at a time,
measured on the server before the points, never assumed), as the request/response sweep does.
"""
from __future__ import annotations

import json
import tempfile
import time
import urllib.request
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
    from workbench.serving.verify import reference_arrays

    inputs, _ = reference_arrays(bundle)
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    out = [[int(t) for t, m in zip(row, mask[k] if mask is not None else [1] * len(row)) if m]
           for k, row in enumerate(ids)]
    if not all(out):
        raise ValueError(f"{bundle}/reference/inputs.npz has an empty prompt: re-export the bundle")
    return out


def stream_once(url: str, model: str, body: dict, timeout_s: float = 60.0) -> tuple[float, int]:
    """(end-to-end seconds, tokens streamed) of one request over Triton's generate_stream endpoint."""
    request = urllib.request.Request(f"http://{url}/v2/models/{model}/generate_stream", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        events = [line for line in response if line.startswith(b"data:")]
    elapsed = time.perf_counter() - start
    bad = [e for e in events if b'"error"' in e]
    if bad:
        raise RuntimeError(f"Triton streamed an error for {model}: {bad[0][:200]!r}")
    return elapsed, len(events)


def stream_capacity(url: str, model: str, make_body: Callable[[int], dict], n: int = 3, warmup: int = 1) -> dict:
    """One stream at a time: median end-to-end latency and capacity = 1 / it (the warm-up pays ORT's first runs)."""
    times = []
    for i in range(warmup + n):
        body = make_body(i)
        elapsed, tokens = stream_once(url, model, body)
        want = body["MAX_NEW_TOKENS"]
        if tokens != want:
            raise RuntimeError(f"{model} streamed {tokens} tokens, not the {want} asked for: check the server log")
        if i >= warmup:
            times.append(elapsed)
    e2e = sorted(times)[len(times) // 2]
    return {"sync_e2e_ms": round(e2e * 1e3, 3), "capacity_per_s": round(1.0 / e2e, 3)}


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
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        fmt = (lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}")
        lines = [f"{'offered/s':>10} {'sent/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9} {'TPOT p99':>9} "
                 f"{'ITL p99':>9} {'TTFT<=SLO':>9} valid"]
        for row in self.rows:
            cells = " ".join(fmt(row.get(k)) for k in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
                                                        "itl_p99_ms"))
            lines.append(f"{row['offered_rate_per_s']:10.2f} {row['achieved_rate_per_s']:8.2f} {cells} "
                         f"{row['slo_attainment']:9.2%} {'yes' if row['valid'] else 'NO'}")
        lines.append(f"ms; {self.new_tokens} new tokens per request; synchronous stream {self.capacity['sync_e2e_ms']} "
                     f"ms end to end ({self.capacity['capacity_per_s']}/s); goodput {self.goodput_per_s}/s at >= "
                     f"{self.attainment:.0%} of TTFTs within {self.slo_ms} ms (TTFT p99 <= SLO; '-': too few "
                     "requests for that percentile)")
        return "\n".join(lines + self.notes)


def sweep_lm(bundle: Path, slo_ms: float, rates=None, new_tokens: int = DEFAULT_NEW_TOKENS, n_requests=None,
             attainment: float = 0.99, arrival: str = "poisson", warmup_s: float = 1.0, table=None,
             progress: Callable[[str], None] | None = None, fractions=DEFAULT_FRACTIONS) -> LmLoadResult:
    """Serve the causal-LM ``bundle`` as a streaming Triton model and measure TTFT / TPOT / ITL at each rate.

    Each point is a ``scenario: "load-stream"`` row appended to ``table`` as soon as it is measured (a server that
    dies mid-sweep ends it with a LoadError; the rows done are kept). Streams always run ``new_tokens`` tokens (no
    EOS stop) so every point compares the same output length. One model instance at the bundle's thread count.
    ``goodput_per_s``: going up the rates, the highest valid point (client kept the schedule, no errors) meeting the
    SLO before the first that does not.
    """
    from workbench.serving.config_search import bundle_inputs, exported_config
    from workbench.serving.lm_stream import lm_stream_repository
    from workbench.serving.load import LoadError
    from workbench.serving.load_stream import open_loop_stream
    from workbench.serving.load_sweep import goodput_of
    from workbench.serving.serve_check import TritonServer, triton_distribution
    from workbench.serving.verify import model_paths

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
            cap = stream_capacity(server.url, name, make_body)
            ladder = sorted(float(r) for r in rates) if rates else [round(f * cap["capacity_per_s"], 3)
                                                                    for f in fractions]
            for k, rate in enumerate(ladder):
                res = open_loop_stream(server.url, name, make_body, rate, n_requests or requests_for(rate),
                                       arrival=arrival, warmup_s=warmup_s, seed=k)
                share = res.ttft_within(slo_ms)
                row = {**base, **res.as_row(), "slo_ms": slo_ms, "slo_metric": "ttft",
                       "slo_attainment": round(share, 5), "meets_slo": bool(res.valid and share >= attainment), **cap}
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
    notes = [] if good is not None else [(f"no rate met the SLO: even {ladder[0]}/s had < {attainment:.0%} of TTFTs "
                                          f"within {slo_ms} ms (or was not valid)")]
    return LmLoadResult(slo_ms=slo_ms, attainment=attainment, capacity=cap, new_tokens=new_tokens, points=points,
                        rows=rows, goodput_per_s=good, notes=notes)


__all__ = ["sweep_lm", "lm_graph", "check_streamable", "prompts", "stream_capacity", "requests_for", "LmLoadResult",
           "SEARCH_ERROR", "DEFAULT_FRACTIONS", "DEFAULT_NEW_TOKENS"]
