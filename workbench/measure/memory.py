"""Peak memory while a function runs: process peak RSS and CUDA max allocated.

On Linux the kernel keeps the process's RSS high-water mark (VmHWM) and lets a process reset it by writing "5"
to /proc/self/clear_refs, which gives an exact peak for the call with no sampling. Elsewhere a sampling thread
stands in (it can miss allocations shorter than its interval).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _high_water_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_high_water() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakRSS:
    """Context manager: ``peak_mb`` (process RSS peak inside the block) and ``delta_mb`` (over RSS at entry)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss_mb(self) -> float:
        return self.process.memory_info().rss / 2**20

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self):
        self.start_mb = self.peak_mb = self._rss_mb()
        self._exact = _reset_high_water() and _high_water_mb() is not None
        if not self._exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._exact:
            self.peak_mb = max(self.start_mb, _high_water_mb() or 0.0)
        else:
            self._stop.set()
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


def measure_peak_memory(fn: Callable[[], object], device: str = "cpu") -> dict:
    """Run ``fn`` once and report peak RSS (MB) and, on CUDA, peak allocated GPU memory (MB)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        fn()
    row = {"peak_rss_mb": round(rss.peak_mb, 1), "rss_delta_mb": round(rss.delta_mb, 1)}
    if device == "cuda":
        torch.cuda.synchronize()
        row["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row
