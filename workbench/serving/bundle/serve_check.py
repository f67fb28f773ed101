"""Serve a bundle on a real Triton Inference Server on loopback, check every answer, report batching and latency.

The server is the ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel, with its Python backend. That
wheel has no onnxruntime backend, so the check serves a Python-backend twin (:mod:`workbench.serving.bundle.triton_twin`) of the
bundle's model: same ``model.onnx`` (run by onnxruntime), same inputs, outputs, max_batch_size and dynamic_batching
as the bundle's ``config.pbtxt``; only ``backend`` changes. Setup as pytriton does it, without touching the
installed package: the backend files and the stub for the running Python are copied into a temporary backend
folder, the wheel's ``nvidia_pytriton.libs`` and Python's LIBDIR go on LD_LIBRARY_PATH, and HTTP, gRPC and metrics
bind to free 127.0.0.1 ports (:mod:`workbench.serving.bundle.triton_server`). A bounded burst of concurrent requests
(one reference example each) goes through the one load client (:mod:`workbench.serving.load.client`); the server is
stopped (its whole process group) whatever happens.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench.measure.timing import percentile_ranks
from workbench.serving.bundle.triton_server import ServeCheckError, TritonServer, triton_distribution, twin_repository
from workbench.serving.bundle.verify import reference_arrays, servable_manifest


@dataclass
class ServeCheckReport:
    """What the served model did: answers checked, batches Triton formed, client-side latency."""

    bundle: str
    model: str
    n_requests: int
    concurrency: int
    n_correct: int
    max_abs_diff: float
    batch_sizes: dict[int, int]       # batch size Triton executed -> number of executions (during the burst)
    latency_ms: dict[str, float]      # client-side p50/p90/p99/max per request
    throughput_per_s: float
    server_version: str
    ports: dict[str, int]
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return self.n_correct == self.n_requests and not self.mismatches

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _batch_counts(url: str, name: str) -> dict[int, int]:
    from workbench.serving.load.client import model_stats

    return {int(k[6:]): v[0] for k, v in model_stats(url, name).items() if k.startswith("batch_")}


def _burst(url: str, name: str, inputs: dict, outputs: dict, n_requests: int, concurrency: int, tol: dict):
    """``n_requests`` reference examples through the one load client (its pinned process), ``concurrency`` in
    flight; each answer compared with the reference. Returns (ms, worst difference, mismatches) per request."""
    from workbench.serving.bundle.verify import compare_outputs
    from workbench.serving.load.client import decode_outputs, infer_body, request_bytes, split_url
    from workbench.serving.load.pinned import client_run
    from workbench.serving.load.schedule import closed_loop_blocking

    host, port = split_url(url)
    n_ref = len(next(iter(inputs.values())))
    messages = [request_bytes(host, port, name, infer_body({k: np.ascontiguousarray(a[i % n_ref:i % n_ref + 1])
                                                              for k, a in inputs.items()}))
                for i in range(n_requests)]
    answers, _ = client_run(closed_loop_blocking, {"host": host, "port": port, "messages": messages,
                                                   "concurrency": concurrency}, timeout_s=60.0 * n_requests + 60)
    results = []
    for i, (seconds, outcome, payload) in enumerate(answers):
        if outcome != "ok":
            raise ServeCheckError(f"request {i}: Triton answered {outcome}: {(payload or b'')[:200]!r}")
        k = i % n_ref
        got = decode_outputs(payload)
        got = {o: got[o] for o in outputs}
        # serve_atol: the batch-composition margin measured at export (tiny for float models, see export.py)
        want = {o: v[k:k + 1] for o, v in outputs.items()}
        worst, bad = compare_outputs(got, want, tol.get("serve_atol", tol["atol"]), tol["rtol"])
        results.append((seconds * 1e3, worst, [f"request {i}: {b}" for b in bad]))
    return results


def serve_check(bundle: str | Path, n_requests: int = 64, concurrency: int = 8, start_timeout: float = 120.0,
                raise_on_error: bool = True) -> ServeCheckReport:
    """Serve ``bundle`` on a real Triton server on loopback, send a burst, compare answers, stop the server.

    Args:
        bundle: folder written by :func:`workbench.serving.bundle.export.export_bundle` (its hashes are checked first).
        n_requests: requests in the burst (bounded: 1..10000), each one reference example.
        concurrency: requests in flight at once (so Triton's dynamic batcher can form batches).
        start_timeout: seconds to wait for the server to be ready.
        raise_on_error: raise :class:`ServeCheckError` when any answer differs from the reference.

    Example:
        >>> report = serve_check("artifacts/bundles/text-classification-ort-fp32")   # doctest: +SKIP
        >>> report.batch_sizes, report.latency_ms["p99"]
    """
    import json
    import urllib.request

    if not 1 <= n_requests <= 10_000 or not 1 <= concurrency <= 256:
        raise ValueError(f"n_requests {n_requests} must be 1..10000 and concurrency {concurrency} 1..256")
    bundle = Path(bundle)
    manifest = servable_manifest(bundle)
    inputs, outputs = reference_arrays(bundle)
    dist = triton_distribution()
    name = manifest["name"]
    with tempfile.TemporaryDirectory(prefix="workbench-triton-") as tmp:
        backends, repo = twin_repository(bundle, manifest, Path(tmp), dist)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log", start_timeout) as server:
            with urllib.request.urlopen(f"http://{server.url}/v2", timeout=10) as r:
                version = json.loads(r.read()).get("version", "?")
            _burst(server.url, name, inputs, outputs, 1, 1, manifest["reference"])  # warm-up (ORT first run)
            before = _batch_counts(server.url, name)
            start = time.perf_counter()
            try:
                results = _burst(server.url, name, inputs, outputs, n_requests, concurrency, manifest["reference"])
            except Exception as exc:
                raise ServeCheckError(f"request to Triton failed: {type(exc).__name__}: {exc}; server log: "
                                      f"{server.log_tail()}") from exc
            wall = time.perf_counter() - start
            after = _batch_counts(server.url, name)
            ports = dict(server.ports)
    formed = {b: n - before.get(b, 0) for b, n in sorted(after.items()) if n - before.get(b, 0) > 0}
    lat = np.array([r[0] for r in results])
    mismatches = [m for r in results for m in r[2]]
    report = ServeCheckReport(
        bundle=str(bundle), model=name, n_requests=n_requests, concurrency=concurrency,
        n_correct=sum(1 for r in results if not r[2]), max_abs_diff=max(r[1] for r in results),
        batch_sizes=formed, latency_ms={p: round(float(np.percentile(lat, q)), 3) for p, q in
                                        (*percentile_ranks(), ("max", 100))},
        throughput_per_s=round(n_requests / wall, 2), server_version=version, ports=ports, mismatches=mismatches[:20])
    if raise_on_error and not report.ok:
        raise ServeCheckError(f"{n_requests - report.n_correct} of {n_requests} answers differ from the reference: "
                              + "; ".join(report.mismatches[:5]))
    return report


__all__ = ["serve_check", "ServeCheckReport", "ServeCheckError", "TritonServer", "triton_distribution"]
