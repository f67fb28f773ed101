"""Peak memory while a function runs: process RSS (sampled) and CUDA max allocated."""
from __future__ import annotations

import threading
from typing import Callable

import psutil
import torch


class PeakRSS:
    """Context manager sampling this process's RSS every ``interval`` s; ``peak_mb`` and ``delta_mb`` after."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)

    def __enter__(self):
        self.start_mb = self.peak_mb = self.process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)

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
