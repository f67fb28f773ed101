"""vLLM's OpenAI server on loopback: its own process group, pinned to its own cores, bounded start-up, always stopped.

``with VllmServer(checkpoint, args) as server:`` starts ``python -m vllm.entrypoints.openai.api_server`` from the
engine venv on 127.0.0.1 and a free port, waits for ``/health`` (bounded; the process exiting first raises with its
log tail), and on leaving the block (normally, on an error or on Ctrl-C) sends SIGTERM to the whole process group
(vLLM starts an engine-core child), then SIGKILL if it has not gone within the grace period.

Cores: the engine gets every core this process may use but the client's (:func:`split_cpus`), so the load client's
own work (several AIPerf processes, or the workbench's stream client) never steals the engine's cores.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from workbench.serving.engine import envs
from workbench.serving.engine.engine_args import EngineArgs
from workbench.serving.engine.support import check_served_here
from workbench.util.net import HOST, ProcessExited, free_port, http_ok, wait_until_ready
STOP_GRACE_S = 20.0


class EngineError(RuntimeError):
    """The engine failed to start, died, or could not bind (the message carries its log tail)."""


def split_cpus(client_cores: int = 1) -> tuple[list[int], list[int], str]:
    """(engine cores, client cores, note): the last ``client_cores`` of this process's cores go to the client. With
    one core both share it and the note says so (client CPU then competes with the engine)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= client_cores:
        return cpus, cpus, f"only {len(cpus)} core(s): engine and client share them"
    return cpus[:-client_cores], cpus[-client_cores:], ""


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


class VllmServer:
    """One vLLM server process group for the life of a ``with`` block.

    Args:
        checkpoint: the HF directory (an engine bundle's ``checkpoint/``).
        args: engine arguments.
        log_path: where the server's stdout/stderr go (its tail is quoted in errors).
        served_name: the model name clients send (default ``model``).
        port: a fixed port (refused with the reason when in use); default a free one.
        cpus: cores the engine runs on (default :func:`split_cpus`'s engine share).
        startup_timeout_s: bound on start-up (model load, KV-cache allocation, warm-up).
    """

    def __init__(self, checkpoint: str | Path, args: EngineArgs, log_path: str | Path, served_name: str = "model",
                 port: int | None = None, cpus: list[int] | None = None, startup_timeout_s: float = 600.0):
        self.checkpoint = Path(checkpoint)
        if not (self.checkpoint / "config.json").is_file():
            raise FileNotFoundError(f"{self.checkpoint} has no config.json: pass an engine bundle's checkpoint/ folder")
        # a weight-only kernel or fp8 KV cache this machine's build lacks: refused before a minute of start-up
        check_served_here(self.checkpoint, args.kv_cache_dtype)
        self.args, self.log_path, self.served_name = args, Path(log_path), served_name
        if port is not None and port_in_use(port):
            raise EngineError(f"port {port} on {HOST} is in use (another server?): pick another or leave it unset")
        self.port = port or free_port()
        self.cpus = cpus if cpus is not None else split_cpus()[0]
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [str(envs.engine_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.checkpoint),
                "--served-model-name", self.served_name, "--host", HOST, "--port", str(self.port),
                *self.args.cli()]

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def _fail(self, what: str) -> EngineError:
        tail = self.log_tail()
        if "address already in use" in tail.lower():
            what = f"port {self.port} on {HOST} is in use (another server took it): {what}"
        return EngineError(f"vLLM {what}. Log {self.log_path}:\n{tail}")

    def __enter__(self) -> "VllmServer":
        # dev mode: the load test resets the prefix cache between clients (/reset_prefix_cache); loopback only
        env = {**os.environ, **self.args.env(), "OMP_NUM_THREADS": str(len(self.cpus)), "VLLM_SERVER_DEV_MODE": "1"}
        env.pop("PYTHONPATH", None)   # the engine venv must not see the workbench's packages
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cpus = set(self.cpus)
        start = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        try:
            self._wait_healthy(start)
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.perf_counter() - start, 1)
        return self

    def _wait_healthy(self, start: float) -> None:
        try:   # polled once a second: the server takes ~1-2 minutes to load
            wait_until_ready("vLLM", http_ok(f"{self.url}/health"), process=self.process, started=start,
                             timeout_s=self.startup_timeout_s, interval_s=1.0)
        except ProcessExited as exc:   # _fail adds the log tail and names a port taken meanwhile
            raise self._fail(f"exited during start-up (code {exc.returncode})") from exc
        except TimeoutError as exc:
            raise self._fail(f"not healthy within {self.startup_timeout_s:.0f} s") from exc

    def check_alive(self) -> None:
        """Raise :class:`EngineError` with the log tail if the server has died."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise self._fail(f"died mid-run (exit code {code})")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period; idempotent."""
        if self.process is None:
            return
        try:
            pgid = os.getpgid(self.process.pid)
        except ProcessLookupError:
            pgid = None
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 10.0)):
            if pgid is None:
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                # children of the group (the engine core) may outlive the leader briefly
                deadline = time.perf_counter() + wait
                while time.perf_counter() < deadline:
                    os.killpg(pgid, 0)
                    time.sleep(0.2)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            self.process.wait(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(bundle: str | Path, log_path: str | Path, args: EngineArgs | None = None, **kw) -> VllmServer:
    """A :class:`VllmServer` for an engine bundle with its own (or the given) engine arguments (not yet started)."""
    import json

    bundle = Path(bundle)
    args = args or EngineArgs.from_dict(json.loads((bundle / "engine_args.json").read_text()))
    return VllmServer(bundle / "checkpoint", args, log_path, **kw)


__all__ = ["VllmServer", "EngineError", "split_cpus", "free_port", "port_in_use", "start_server", "HOST"]
