"""Serve a bundle on a real Triton Inference Server on loopback, check every answer, report batching and latency.

The server is the ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel, with its Python backend. That
wheel has no onnxruntime backend, so the check serves a Python-backend twin (:mod:`workbench.serving.triton_twin`) of the
bundle's model: same ``model.onnx`` (run by onnxruntime), same inputs, outputs, max_batch_size and dynamic_batching
as the bundle's ``config.pbtxt``; only ``backend`` changes. Setup as pytriton does it, without touching the
installed package: the backend files and the stub for the running Python are copied into a temporary backend
folder, the wheel's ``nvidia_pytriton.libs`` and Python's LIBDIR go on LD_LIBRARY_PATH, and HTTP, gRPC and metrics
bind to free 127.0.0.1 ports. A bounded burst of concurrent requests (one reference example each) goes through
tritonclient; the server is stopped (its whole process group) whatever happens.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from workbench.measure.timing import percentile_ranks
from workbench.serving.verify import (BundleError, check_external_data, check_files, load_manifest, model_paths,
                                     reference_arrays)


class ServeCheckError(RuntimeError):
    """The server did not start, or answered wrongly; the message has the reason (and the server log's tail)."""


def triton_distribution() -> dict[str, Path]:
    """Paths of tritonserver, its libraries, the Python backend and the stub for this Python (nvidia-pytriton)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServeCheckError("Triton server not installed: pip install --no-deps nvidia-pytriton==0.7.0 "
                              "(its wheel ships tritonserver; see README, Serving bundle)")
    root = Path(list(spec.submodule_search_locations)[0])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = {"server": root / "tritonserver" / "bin" / "tritonserver", "libs": root.parent / "nvidia_pytriton.libs",
            "backend": root / "tritonserver" / "backends" / "python",
            "stub": root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"}
    missing = [str(p) for p in dist.values() if not p.exists()]
    if missing:
        raise ServeCheckError(f"nvidia-pytriton is incomplete or has no stub for Python {version}: missing {missing}")
    return dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_backend_dir(workdir: Path, dist: dict) -> Path:
    """``workdir/backends``, holding Triton's Python backend and its stub: every model this package serves (the
    twin, the LM stream, the test models) runs on it."""
    backends = Path(workdir) / "backends" / "python"
    backends.mkdir(parents=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(dist["backend"] / f, backends / f)
    shutil.copy2(dist["stub"], backends / "triton_python_backend_stub")
    return backends.parent


def twin_repository(bundle: Path, manifest: dict, workdir: Path, dist: dict, serving=None) -> tuple[Path, Path]:
    """A backend folder (Python backend + stub) and a model repository holding the twin; returns both paths.
    ``serving`` (a ``ServingConfig``) replaces the bundle's batching/instance settings: how the search tries one."""
    from google.protobuf import text_format

    from workbench.serving.triton_config import check_model_config
    from workbench.runtime.onnx_files import onnx_files

    python_backend_dir(workdir, dist)
    config_path, onnx_path = model_paths(bundle, manifest)
    config = check_model_config(config_path.read_text(), expected_name=manifest["name"])
    config.backend, config.default_model_filename = "python", ""
    if serving is not None:
        serving.apply(config)
    model_dir = workdir / "repo" / manifest["name"]
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    shutil.copy2(Path(__file__).with_name("triton_twin.py"), model_dir / "1" / "model.py")
    for f in onnx_files(onnx_path):  # the model and every external-data file its graph names, same relative paths
        link = model_dir / "1" / f.relative_to(onnx_path.parent)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f.resolve(), link)
    return workdir / "backends", workdir / "repo"


def _die_with_parent() -> None:
    """Runs in the child before exec: if this Python process dies (even by SIGKILL), the kernel kills the server."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


class TritonServer:
    """Context manager: start tritonserver on free loopback ports, wait until ready, always stop it on exit."""

    def __init__(self, repo: Path, backends: Path, dist: dict, log_path: Path, start_timeout: float = 120.0):
        self.repo, self.backends, self.dist, self.log_path = repo, backends, dist, log_path
        self.start_timeout = start_timeout
        self.ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    def _env(self) -> dict:
        env = dict(os.environ)
        libs = [str(self.dist["libs"]), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs + [env.get("LD_LIBRARY_PATH", "")] if p])
        # The stub embeds Python: put this interpreter first so it finds the same site-packages (onnxruntime).
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def __enter__(self) -> "TritonServer":
        cmd = [str(self.dist["server"]), f"--model-repository={self.repo}", f"--backend-directory={self.backends}",
               "--http-address=127.0.0.1", f"--http-port={self.ports['http']}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.ports['grpc']}",
               "--metrics-address=127.0.0.1", f"--metrics-port={self.ports['metrics']}",
               "--allow-gpu-metrics=false", "--exit-timeout-secs=5"]
        self._log = open(self.log_path, "w")
        # Own session/process group: stopping it also stops the Python-backend stub processes it spawned.
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env(),
                                        start_new_session=True, preexec_fn=_die_with_parent)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeCheckError(f"tritonserver exited with code {self.process.returncode} while starting: "
                                      f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise ServeCheckError(f"tritonserver not ready after {self.start_timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return " | ".join(line.strip() for line in text[-lines:])

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.process is not None:  # reap stubs left in the group, if any survived their parent
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if getattr(self, "_log", None):
            self._log.close()


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


def _batch_counts(client, name: str) -> dict[int, int]:
    stats = client.get_inference_statistics(model_name=name)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def _burst(url: str, name: str, inputs: dict, outputs: dict, n_requests: int, concurrency: int, tol: dict):
    import tritonclient.http as httpclient

    from workbench.serving.verify import compare_outputs

    local = threading.local()
    n_ref = len(next(iter(inputs.values())))

    def one(i: int):
        if not hasattr(local, "client"):  # tritonclient.http clients are not thread-safe: one per thread
            local.client = httpclient.InferenceServerClient(url, connection_timeout=60, network_timeout=60)
        k = i % n_ref
        tensors = []
        for input_name, arr in inputs.items():
            row = np.ascontiguousarray(arr[k:k + 1])
            t = httpclient.InferInput(input_name, list(row.shape), httpclient.np_to_triton_dtype(row.dtype))
            t.set_data_from_numpy(row)
            tensors.append(t)
        start = time.perf_counter()
        result = local.client.infer(name, tensors)
        ms = (time.perf_counter() - start) * 1e3
        got = {o: result.as_numpy(o) for o in outputs}
        # serve_atol: the batch-composition margin measured at export (tiny for float models, see export.py)
        want = {o: v[k:k + 1] for o, v in outputs.items()}
        worst, bad = compare_outputs(got, want, tol.get("serve_atol", tol["atol"]), tol["rtol"])
        return ms, worst, [f"request {i}: {b}" for b in bad]

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n_requests)))


def serve_check(bundle: str | Path, n_requests: int = 64, concurrency: int = 8, start_timeout: float = 120.0,
                raise_on_error: bool = True) -> ServeCheckReport:
    """Serve ``bundle`` on a real Triton server on loopback, send a burst, compare answers, stop the server.

    Args:
        bundle: folder written by :func:`workbench.serving.bundle.export_bundle` (its hashes are checked first).
        n_requests: requests in the burst (bounded: 1..10000), each one reference example.
        concurrency: requests in flight at once (so Triton's dynamic batcher can form batches).
        start_timeout: seconds to wait for the server to be ready.
        raise_on_error: raise :class:`ServeCheckError` when any answer differs from the reference.

    Example:
        >>> report = serve_check("artifacts/bundles/text-classification-ort-fp32")   # doctest: +SKIP
        >>> report.batch_sizes, report.latency_ms["p99"]
    """
    import tritonclient.http as httpclient

    if not 1 <= n_requests <= 10_000 or not 1 <= concurrency <= 256:
        raise ValueError(f"n_requests {n_requests} must be 1..10000 and concurrency {concurrency} 1..256")
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    problems = check_files(bundle, manifest) + check_external_data(bundle, manifest)
    if problems:
        raise BundleError(f"refusing to serve {bundle}: " + "; ".join(problems))
    inputs, outputs = reference_arrays(bundle)
    dist = triton_distribution()
    name = manifest["name"]
    with tempfile.TemporaryDirectory(prefix="workbench-triton-") as tmp:
        backends, repo = twin_repository(bundle, manifest, Path(tmp), dist)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log", start_timeout) as server:
            client = httpclient.InferenceServerClient(server.url, connection_timeout=60, network_timeout=60)
            version = client.get_server_metadata().get("version", "?")
            _burst(server.url, name, inputs, outputs, 1, 1, manifest["reference"])  # warm-up (ORT first run)
            before = _batch_counts(client, name)
            start = time.perf_counter()
            try:
                results = _burst(server.url, name, inputs, outputs, n_requests, concurrency, manifest["reference"])
            except Exception as exc:
                raise ServeCheckError(f"request to Triton failed: {type(exc).__name__}: {exc}; server log: "
                                      f"{server.log_tail()}") from exc
            wall = time.perf_counter() - start
            after = _batch_counts(client, name)
            client.close()
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
