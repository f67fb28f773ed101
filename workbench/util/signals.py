"""SIGTERM unwinds like Ctrl-C.

Python's default SIGTERM ends the process at once: no ``finally``, no ``with`` exit. The servers a study starts (vLLM
and its engine core, AIPerf's services, Triton) run in their own process groups, so a ``kill``, a CI timeout or a job
scheduler that stops a benchmark with SIGTERM left them running and holding the cores. With
:func:`terminate_as_interrupt` installed, SIGTERM raises ``KeyboardInterrupt``: every ``with`` block stops its server,
saved rows stay saved, and a run that resumes on Ctrl-C resumes the same way.
"""
from __future__ import annotations

import signal
import threading


def _raise_interrupt(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # a second SIGTERM during the clean-up ends the process at once
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def terminate_as_interrupt() -> bool:
    """Install the handler (main thread only, where Python delivers signals); False where it could not be."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True


__all__ = ["terminate_as_interrupt"]
