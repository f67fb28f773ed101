"""Loopback networking helpers shared by every server the workbench starts (Triton, vLLM, JupyterLab in tests):
a free port, and the one readiness poll (a bounded wait for a server that may die while it starts)."""
from __future__ import annotations

import socket
import time
from typing import Callable

HOST = "127.0.0.1"   # servers the workbench starts listen on loopback only


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it): never a fixed port, other servers may share the machine."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct free ports for one server. Each socket stays bound until all are picked: closed one at a time,
    the OS may hand the same port out again (a Triton start here once got one port for HTTP and metrics)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ProcessExited(RuntimeError):
    """The process being waited for exited before it was ready (``returncode`` says how)."""

    def __init__(self, message: str, returncode: int | None):
        super().__init__(message)
        self.returncode = returncode


def http_ok(url: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    """A readiness probe: True once a GET of ``url`` answers 200; refused, reset or timed out is "not yet"."""
    import urllib.request

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:
                return r.status == 200
        except OSError:   # URLError, connection refused / reset, socket timeout: all OSError
            return False

    probe.target = url   # named in the errors
    return probe


def wait_until_ready(what: str, probe: Callable[[], bool], *, timeout_s: float, process=None,
                     started: float | None = None, interval_s: float = 0.25,
                     log_tail: Callable[[], str] | None = None, fix: str = "") -> float:
    """Poll ``probe`` until it returns True; returns the seconds waited since ``started``.

    Args:
        what: the thing waited for, named in every error ("tritonserver", "vLLM", "JupyterLab").
        probe: a no-argument callable, True when ready (e.g. :func:`http_ok`); it must bound its own time.
        timeout_s: the wait ends ``timeout_s`` after ``started`` (a ``time.perf_counter()`` value; default now).
        process: a ``subprocess.Popen`` to watch: if it exits first there is nothing left to wait for.
        interval_s: the pause between probes (a starting server is polled, not spun on).
        log_tail: gives the process's last log lines for the errors.
        fix: what to do about a timeout, appended to its message.

    Raises:
        ProcessExited: ``process`` exited before the probe succeeded (its exit code and log tail in the message).
        TimeoutError: not ready within ``timeout_s`` (what was probed, the log tail and ``fix`` in the message).
    """
    start = time.perf_counter() if started is None else started
    target = getattr(probe, "target", getattr(probe, "__name__", "the probe"))
    tail = (lambda: f"; log tail: {log_tail()}") if log_tail else (lambda: "")
    while True:
        if process is not None and process.poll() is not None:
            raise ProcessExited(f"{what} exited with code {process.returncode} before it was ready (waited for "
                                f"{target}){tail()}", process.returncode)
        if probe():
            return time.perf_counter() - start
        if time.perf_counter() - start >= timeout_s:
            raise TimeoutError(f"{what} not ready within {timeout_s:.0f} s (waited for {target}){tail()}"
                               + (f". Fix: {fix}" if fix else ""))
        time.sleep(interval_s)   # polling a starting server, not standing in for work


__all__ = ["free_port", "free_ports", "HOST", "http_ok", "wait_until_ready", "ProcessExited"]
