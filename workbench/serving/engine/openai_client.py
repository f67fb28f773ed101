"""The workbench's own open-loop client for an OpenAI-compatible ``/v1/completions`` stream (the cross-check on AIPerf).

Same rules as the Triton stream client (:mod:`workbench.serving.load.stream`): send times precomputed on one
absolute clock, every time measured from the *scheduled* send, client-bound points flagged. Tokens per streamed
chunk come from the server's running usage count (``stream_options.continuous_usage_stats``), so a chunk that
carries k tokens is k inter-token samples of gap / k (:mod:`workbench.measure.request_metrics`), as AIPerf counts.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field



def completion_body(model: str, prompt: str, max_tokens: int) -> dict:
    """A streamed greedy completion that always makes ``max_tokens`` tokens (``ignore_eos``)."""
    return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True}}


async def _one(host: str, port: int, body: bytes, t0: float, timeout_s: float, emits: list):
    """Stream one request; appends (seconds from t0, tokens in that chunk) per chunk that carried tokens."""
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    writer = None
    done = 0
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        status = int((await asyncio.wait_for(reader.readline(), timeout_s)).split()[1])
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            if not line:
                break
            if not line.startswith(b"data:") or line.startswith(b"data: [DONE]"):
                continue
            now = time.perf_counter() - t0
            event = json.loads(line[5:])
            if "error" in event:
                return f"error {str(event['error'])[:120]}"
            total = (event.get("usage") or {}).get("completion_tokens")
            if total is not None and total > done and event.get("choices"):
                emits.append((now, total - done))
                done = total
        return "ok" if status == 200 else f"http {status}"
    except asyncio.TimeoutError:
        return "timeout"
    except (OSError, ValueError, IndexError) as exc:
        return type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def _run(host, port, bodies, offsets, timeout_s):
    emits = [[] for _ in bodies]
    sent = [float("nan")] * len(bodies)
    tasks = []
    t0 = time.perf_counter()
    for i, at in enumerate(offsets):
        target = t0 + at
        # Sleep to the send time, never spin: a spinning client would take CPU from the engine it measures; how late
        # the loop woke is reported as the send lag.
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[i] = time.perf_counter() - t0
        tasks.append(asyncio.ensure_future(_one(host, port, bodies[i], t0, timeout_s, emits[i])))
    outcome = await asyncio.gather(*tasks)
    return sent, emits, list(outcome)


@dataclass
class OwnClientResult:
    """One point of the own client: request metrics (ms columns as :func:`request_metrics` names them)."""

    metrics: dict
    n_sent: int
    n_ok: int
    errors: int
    send_lag_p99_ms: float
    client_cpu_s: float
    wall_s: float
    notes: list[str] = field(default_factory=list)
    per_request: list[tuple[float, float | None]] = field(default_factory=list, repr=False)  # (TTFT ms, mean ITL ms)

    def within(self, slo_ttft_ms: float, slo_itl_ms: float) -> float:
        """Share of sent requests with TTFT and mean inter-token latency (AIPerf's per-request ITL) within the SLOs;
        failed requests count as misses."""
        from workbench.measure.request_metrics import share_within

        return share_within(self.per_request, self.n_sent, slo_ttft_ms, slo_itl_ms)


def run_schedule(url: str, prompts: list[str], offsets, max_tokens: int, model: str = "model",
                 timeout_s: float = 120.0) -> OwnClientResult:
    """Stream ``prompts[i]`` at ``offsets[i]`` seconds (open loop) to ``url`` and summarise the requests."""
    import numpy as np

    from workbench.measure.request_metrics import per_request_latency, request_metrics
    from workbench.serving.load.client import split_url
    from workbench.serving.load.schedule import run_async

    host, port = split_url(url.removeprefix("http://"))
    bodies = [json.dumps(completion_body(model, p, max_tokens)).encode() for p in prompts]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sent, emits, outcome = run_async(lambda: _run(host, port, bodies, list(offsets), timeout_s))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ok = [i for i, o in enumerate(outcome) if o == "ok" and emits[i]]
    requests = [(float(offsets[i]), [t for t, _ in emits[i]], [k for _, k in emits[i]]) for i in ok]
    metrics = request_metrics(requests) if requests else {}
    per_request = per_request_latency(requests)
    lag = float(np.percentile([(s - o) * 1e3 for s, o in zip(sent, offsets)], 99))
    errors = len(prompts) - len(ok)
    notes = [f"{errors} errors ({', '.join(sorted({o for o in outcome if o != 'ok'}))})"] if errors else []
    return OwnClientResult(metrics=metrics, n_sent=len(prompts), n_ok=len(ok), errors=errors,
                           send_lag_p99_ms=round(lag, 3), client_cpu_s=round(cpu, 3), wall_s=round(wall, 3),
                           notes=notes, per_request=per_request)


__all__ = ["run_schedule", "completion_body", "OwnClientResult"]
