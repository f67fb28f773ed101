"""Peak memory while a function runs: process peak RSS; on CUDA, torch's max allocated and the device-wide peak.

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


class DeviceMemoryPeak:
    """Peak device-wide used GPU memory (MB) while a block runs, sampled from ``torch.cuda.mem_get_info``.

    ``torch.cuda.max_memory_allocated`` sees only torch's own allocator; ONNX Runtime's CUDA arena (and any other
    library) allocates beside it, so an ORT variant on the GPU would look free. The driver's used = total - free
    counts every allocation on the device (other processes' too: the row says it is device-wide).
    """

    def __init__(self, interval_s: float = 0.002):
        self.interval_s, self.peak_mb, self.start_mb = interval_s, 0.0, 0.0
        self._stop = threading.Event()

    @staticmethod
    def used_mb() -> float:
        free, total = torch.cuda.mem_get_info()
        return (total - free) / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.used_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "DeviceMemoryPeak":
        self.start_mb = self.peak_mb = self.used_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize()
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.used_mb())


def measure_peak_memory(fn: Callable[[], object], device: str = "cpu") -> dict:
    """Run ``fn`` once and report peak RSS (MB) and, on CUDA, torch's peak allocated memory and the device-wide
    peak used memory (MB), which also counts ONNX Runtime's CUDA allocations."""
    if device != "cuda":
        with PeakRSS() as rss:
            fn()
        return {"peak_rss_mb": round(rss.peak_mb, 1), "rss_delta_mb": round(rss.delta_mb, 1)}
    torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss, DeviceMemoryPeak() as gpu:
        fn()
    return {"peak_rss_mb": round(rss.peak_mb, 1), "rss_delta_mb": round(rss.delta_mb, 1),
            "cuda_max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "cuda_device_used_peak_mb": round(gpu.peak_mb, 1),
            "cuda_device_used_delta_mb": round(gpu.peak_mb - gpu.start_mb, 1)}
