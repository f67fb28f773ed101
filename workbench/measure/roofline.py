"""Roofline facts of the current device: measured copy bandwidth and matmul rate, and model-bandwidth utilisation.

Decode at small batch is bound by reading the weights once per token, so the ceiling is
``peak bandwidth / weight bytes`` tokens/s; MBU = ``weight bytes x tokens/s / measured peak bandwidth``.
Peaks are measured here (never taken from a spec sheet), so MBU compares like with like.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from workbench.measure.timing import timed_call
from workbench.runtime.torch_runner import resolve_device


@dataclass(frozen=True)
class DevicePeaks:
    device: str
    copy_gb_per_s: float      # read + write bytes of a large tensor copy, per second
    matmul_tflops: float      # dense square matmul in the given dtype
    matmul_dtype: str

    def as_row(self) -> dict:
        return asdict(self)


def _best_seconds(fn, repeats: int, device: str) -> float:
    fn()  # warm-up: allocation, kernel selection
    return min((timed_call(fn, device)[0] for _ in range(repeats)), default=float("inf")) / 1e3


def copy_bandwidth(device: str = "auto", megabytes: int = 256, repeats: int = 10) -> float:
    """GB/s of ``dst.copy_(src)`` over a buffer far larger than any cache (bytes read + bytes written)."""
    device = resolve_device(device)
    n = megabytes * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), repeats, device)
    return 2 * src.numel() * 4 / seconds / 1e9


def matmul_rate(device: str = "auto", size: int | None = None, dtype: torch.dtype | None = None, repeats: int = 10) -> float:
    """TFLOP/s of a square matmul (bf16 on CUDA, fp32 on CPU unless ``dtype`` says otherwise)."""
    device = resolve_device(device)
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    size = size or (8192 if device == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = _best_seconds(lambda: a @ b, repeats, device)
    return 2 * size**3 / seconds / 1e12


def device_peaks(device: str = "auto") -> DevicePeaks:
    device = resolve_device(device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return DevicePeaks(device, round(copy_bandwidth(device), 1), round(matmul_rate(device, dtype=dtype), 3),
                       str(dtype).replace("torch.", ""))


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of distinct parameter and buffer storage (tied weights once): what each decode step reads."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = t.data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def bandwidth_utilisation(model_bytes: int, tokens_per_s: float, batch_size: int, peak_gb_per_s: float) -> float:
    """MBU of a decode run: weights are read once per step and a step makes ``batch_size`` tokens."""
    steps_per_s = tokens_per_s / batch_size
    return model_bytes * steps_per_s / (peak_gb_per_s * 1e9)
