"""One benchmark arm in its own process, called from the process that times all the arms.

Arms that share a process also share its allocator, its thread pools and its compiler caches: worker threads that
one runtime leaves spinning after a call (OpenMP, ONNX Runtime) take CPU from the arm that runs next, and one
arm's memory layout follows another's. An :class:`ArmProcess` builds its arm in a fresh interpreter (``spawn``) and
then waits, idle, for calls; the parent still takes the arms in turn round by round (see
:mod:`workbench.measure.interleaved`), so machine load drift still lands on all of them alike.

The arm is built by a factory function named by its source (a module name, or the path of a script such as a
benchmark, loaded under another name so its ``main`` does not run) and keyword arguments that pickle. The factory
returns ``(call, info)``: ``call(*args)`` does the work of one timed turn inside the child, and ``info`` (a dict that
pickles) describes the arm. Timing belongs inside ``call`` (the pipe's round trip is not the arm's time).

Example:
    >>> with ArmProcess("benchmarks/llm_decode.py", "worker_arm", name="fast-loop-fp32", args={...}) as arm:  # doctest: +SKIP
    ...     tokens, ttft_s, total_s = arm(ids, 128)
"""
from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import traceback
from pathlib import Path
from typing import Any


class ArmProcessError(RuntimeError):
    """The arm's process failed to build the arm, failed in a call, or died (the message has its traceback)."""


def _load(source: str):
    if source.endswith(".py"):
        path = Path(source)
        spec = importlib.util.spec_from_file_location(f"_arm_source_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(source)


def _serve(conn, source: str, factory: str, kwargs: dict) -> None:
    """The child: build the arm, send its info, then answer calls until told to stop (``None``)."""
    try:
        call, info = getattr(_load(source), factory)(**kwargs)
        conn.send(("ok", info))
    except BaseException:  # noqa: BLE001 - whatever failed, the parent gets the traceback, not a hang
        conn.send(("error", f"building the arm with {source}:{factory} failed:\n{traceback.format_exc()}"))
        return
    while True:
        args = conn.recv()
        if args is None:
            return
        try:
            conn.send(("ok", call(*args)))
        except BaseException:  # noqa: BLE001
            conn.send(("error", f"a call of the arm failed:\n{traceback.format_exc()}"))


class ArmProcess:
    """An arm built by ``factory(**kwargs)`` from ``source`` in its own process; ``arm(*args)`` runs one call there.

    Args:
        source: a module name, or a ``.py`` file path.
        factory: the function in ``source`` that returns ``(call, info)``.
        kwargs: its keyword arguments (they must pickle).

    ``info`` is the factory's dict. Building waits for the child (compile time and all), so arms built one after
    another do not compete for the CPU while any of them is being built.
    """

    def __init__(self, source: str | Path, factory: str, **kwargs: Any):
        context = multiprocessing.get_context("spawn")   # a fresh interpreter: no thread pools inherited by fork
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, str(source), factory, kwargs), daemon=True)
        self.process.start()
        child.close()
        self.info: dict = self._receive()

    def _receive(self):
        try:
            status, value = self._conn.recv()
        except EOFError as exc:
            code = self.process.exitcode
            raise ArmProcessError(f"the arm's process ended without an answer (exit code {code}); if it was killed "
                                  "(-9), the machine may be out of memory: run fewer arms (--arms)") from exc
        if status == "error":
            self.close()
            raise ArmProcessError(value)
        return value

    def __call__(self, *args):
        self._conn.send(args)
        return self._receive()

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to stop; kill it if it does not within ``timeout`` seconds."""
        if self.process.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self._conn.close()

    def __enter__(self) -> "ArmProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ArmProcess", "ArmProcessError"]
