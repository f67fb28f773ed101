"""Triton server lifecycle on loopback: the distribution (nvidia-pytriton's tritonserver + Python backend), the
backend folder, the bundle's Python-backend twin repository, and ``TritonServer`` (free 127.0.0.1 ports, optional
CPU pinning, always stopped with its whole process group).

The wheel has no onnxruntime backend, so the bundle is served as a Python-backend twin
(:mod:`workbench.serving.bundle.triton_twin`) of its model: same ``model.onnx`` (run by onnxruntime), same inputs,
outputs, max_batch_size and dynamic_batching as the bundle's ``config.pbtxt``; only ``backend`` changes. Setup as
pytriton does it, without touching the installed package: the backend files and the stub for the running Python are
copied into a temporary backend folder, the wheel's ``nvidia_pytriton.libs`` and Python's LIBDIR go on
LD_LIBRARY_PATH, and HTTP, gRPC and metrics bind to free 127.0.0.1 ports.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

from workbench.serving.bundle.verify import model_paths
from workbench.util.net import ProcessExited, free_ports, http_ok, wait_until_ready


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

    from workbench.serving.bundle.triton_config import check_model_config
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
    """Context manager: start tritonserver on free loopback ports, wait until ready, always stop it on exit.

    ``cpus``: the CPUs the server (and every backend stub it starts, which inherit the mask) may run on; default:
    the server's share of :func:`workbench.serving.load.pinned.cpu_split` (every CPU but the load client's), so a
    load client on the same machine does not take the model's cores. ``server.cpus`` says what was used."""

    def __init__(self, repo: Path, backends: Path, dist: dict, log_path: Path, start_timeout: float = 120.0,
                 cpus=None):
        from workbench.serving.load.pinned import cpu_split

        self.repo, self.backends, self.dist, self.log_path = repo, backends, dist, log_path
        self.start_timeout = start_timeout
        self.cpus = tuple(sorted(cpus)) if cpus is not None else cpu_split()["server_cpus"]
        self.ports = dict(zip(("http", "grpc", "metrics"), free_ports(3)))
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
               # Stopped only once its figures are read: no request is in flight to wait for. With the default
               # wait Triton polls its unloading models once a second, and a stop took 2.8 s here; with 0, 0.75 s
               # (still a clean stop: the Python backend's shared-memory region is removed, unlike with SIGKILL).
               "--allow-gpu-metrics=false", "--exit-timeout-secs=0"]
        self._log = open(self.log_path, "w")
        # Own session/process group: stopping it also stops the Python-backend stub processes it spawned.
        cpus = self.cpus

        def before_exec():
            _die_with_parent()
            os.sched_setaffinity(0, cpus)   # inherited by every thread and stub process the server starts

        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env(),
                                        start_new_session=True, preexec_fn=before_exec)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        try:
            wait_until_ready("tritonserver", http_ok(f"http://{self.url}/v2/health/ready"), process=self.process,
                             timeout_s=self.start_timeout, log_tail=self.log_tail,
                             fix="raise start_timeout (a loaded machine loads models slowly) or read the log above")
        except (ProcessExited, TimeoutError) as exc:   # serve-check's one error type, the poll's message
            raise ServeCheckError(str(exc)) from exc

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


__all__ = ["TritonServer", "ServeCheckError", "triton_distribution", "twin_repository", "python_backend_dir"]
