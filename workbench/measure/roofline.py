"""Roofline facts of the current device: measured copy bandwidth and matmul rate, and model-bandwidth utilisation.

Decode at small batch is bound by reading the weights once per token, so the ceiling is
``peak bandwidth / weight bytes`` tokens/s; MBU = ``bytes read x steps/s / measured peak READ bandwidth``.
Peaks are measured here (never taken from a spec sheet), so MBU compares like with like: a decode step reads its
bytes, so the peak is what this device reads per second (a reduction over a buffer far larger than any cache), not
a copy's read + write total. The bytes are those the arm really reads (:func:`decode_step_bytes`): every weight
byte once, and the KV cache as the arm's cache holds it (a static cache's attention reads all ``max_cache_len``
positions, masked or not; a dynamic cache the positions filled so far), in the arm's compute dtype.
A utilisation above 1 is a bug (bytes undercounted, a peak measured too low, or weights that fit in the CPU
cache), never a tolerance: :func:`roofline_columns` flags it in ``bandwidth_flag``.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from workbench.measure.timing import timed_call
from workbench.runtime.threads import torch_threads
from workbench.runtime.torch_runner import resolve_device


@dataclass(frozen=True)
class DevicePeaks:
    device: str
    copy_gb_per_s: float      # read + write bytes of a large tensor copy, per second
    matmul_tflops: float      # dense square matmul in the given dtype
    matmul_dtype: str

    def as_row(self) -> dict:
        return asdict(self)


def _best_seconds(fn, repeats: int, device: str, threads: int | None = None) -> float:
    """Fastest of ``repeats`` timed calls after one warm-up, at ``threads`` intra-op threads (None: the current
    count; the previous count comes back after)."""
    with torch_threads(threads):
        fn()  # warm-up: allocation, kernel selection
        return min((timed_call(fn, device)[0] for _ in range(repeats)), default=float("inf")) / 1e3


def copy_bandwidth(device: str = "auto", megabytes: int = 256, repeats: int = 10, threads: int | None = None) -> float:
    """GB/s of ``dst.copy_(src)`` over a buffer far larger than any cache (bytes read + bytes written).

    ``threads``: intra-op threads for the copy (CPU bandwidth grows with the cores copying), restored afterwards;
    give the thread count of the run the figure is compared with. None: the current count.
    """
    device = resolve_device(device)
    n = megabytes * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), repeats, device, threads)
    return 2 * src.numel() * 4 / seconds / 1e9


@functools.lru_cache(maxsize=None)
def run_copy_bandwidth(device: str, threads: int) -> float:
    """:func:`copy_bandwidth` for a run at ``threads`` on ``device``, measured once per process and pair."""
    return copy_bandwidth(device, threads=threads)


class ReadProbe:
    """A call that reads a buffer far larger than any cache ``repeats`` times: the read bandwidth as an arm of the
    interleaved run it is compared with.

    Timed among the decode arms (``arms.runner.time_arms(references=...)``), its median call gives what this device
    read per second at the same moments, under the same load, as the arms' median calls: MBU is then a ratio of two
    figures measured side by side. A peak measured once, the best of 10 reads at another moment
    (:func:`run_read_bandwidth`), is the machine's best at one other moment, not its state during the run: on a
    shared 2-core box the same arm's decode speed moves by 20-30% between moments. (In one decode benchmark here the
    two agreed within 3%: 19.8 GB/s side by side, 20.3 best of 10 apart; the side-by-side figure is the one that
    cannot drift apart from the arms.)
    """

    def __init__(self, device: str = "cpu", megabytes: int = 256, repeats: int = 32):
        self.device = resolve_device(device)
        self.src = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32, device=self.device)
        self.repeats = repeats
        self.bytes_per_call = self.src.numel() * 4 * repeats

    def __call__(self) -> None:
        for _ in range(self.repeats):
            self.src.sum()

    def gb_per_s(self, call_ms: float) -> float:
        """GB/s read by a call of this probe that took ``call_ms``."""
        return self.bytes_per_call / (call_ms / 1e3) / 1e9


def read_bandwidth(device: str = "auto", megabytes: int = 256, repeats: int = 10, threads: int | None = None) -> float:
    """GB/s this device READS: the best of ``repeats`` single reads of a :class:`ReadProbe` buffer (bytes read per
    second; the one scalar written is nothing). The peak a decode step's reads are compared with. ``threads`` as in
    :func:`copy_bandwidth`."""
    probe = ReadProbe(device, megabytes, repeats=1)
    return probe.gb_per_s(_best_seconds(probe, repeats, probe.device, threads) * 1e3)


@functools.lru_cache(maxsize=None)
def run_read_bandwidth(device: str, threads: int) -> float:
    """:func:`read_bandwidth` for a run at ``threads`` on ``device``, measured once per process and pair."""
    return read_bandwidth(device, threads=threads)


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


def bandwidth_utilisation(model_bytes: int, tokens_per_s: float, batch_size: int, peak_gb_per_s: float) -> float:
    """MBU of a decode run: weights are read once per step and a step makes ``batch_size`` tokens."""
    steps_per_s = tokens_per_s / batch_size
    return model_bytes * steps_per_s / (peak_gb_per_s * 1e9)


def decode_call_bytes(model_bytes: int, kv_per_position: int, context: float, batch_size: int = 1) -> float:
    """Bytes one decode call reads: every weight once, plus each sequence's KV cache over ``context`` positions."""
    return model_bytes + batch_size * kv_per_position * context


def decode_step_bytes(model, batch_size: int, context: float, static_cache_len: int | None = None,
                      weight_bytes: int | None = None) -> float:
    """Bytes one decode step of ``model`` really reads: its weights
    (:func:`~workbench.runtime.kv_budget.decode_weight_bytes` unless ``weight_bytes`` says, e.g. an ONNX file's) and each sequence's KV cache in the compute dtype (bf16 KV for
    a bf16 model, fp32 for fp32 and fp32-activation weight-only models), over ``static_cache_len`` positions for a
    static cache (attention reads the whole allocated cache, masked) or ``context`` (the mean filled length) for a
    dynamic one."""
    from workbench.runtime.kv_budget import decode_weight_bytes, kv_bytes_per_position

    weights = decode_weight_bytes(model) if weight_bytes is None else weight_bytes
    positions = static_cache_len if static_cache_len is not None else context
    return decode_call_bytes(weights, kv_bytes_per_position(model), positions, batch_size)


def decode_bytes_per_token(calls: list, new_tokens: int, context: float, batch_size: int = 1) -> float:
    """Bytes read per new token over decode calls of one or more models: ``calls`` = [(model, decode calls), ...]
    (the target's verify calls and a draft model's calls for speculative decoding), each call reading the model's
    weights and its KV cache at the mean ``context`` length."""
    from workbench.runtime.kv_budget import decode_weight_bytes, kv_bytes_per_position

    total = sum(n * decode_call_bytes(decode_weight_bytes(m), kv_bytes_per_position(m), context, batch_size)
                for m, n in calls if m is not None)
    return total / max(new_tokens, 1)


def utilisation_flag(utilisation: float | None) -> str | None:
    """Why a bandwidth utilisation cannot be right (above 1: more bytes per second than the device reads), or None."""
    if utilisation is None or utilisation <= 1.0:
        return None
    return (f"bandwidth utilisation {utilisation:.3g} > 1 is impossible for bytes read from memory: the bytes per "
            "step are overcounted, the peak was measured under heavier load than the run, or the weights fit in the "
            "CPU cache (a tiny model)")


def roofline_columns(bytes_per_token: float, tokens_per_s: float, peak_gb_per_s: float) -> dict:
    """A decode row's roofline: ``bytes_per_token``, achieved ``bandwidth_gb_s`` and ``bandwidth_utilisation``
    (achieved / measured peak READ bandwidth of this device at the run's thread count, :func:`read_bandwidth`),
    and ``bandwidth_flag`` when the utilisation is above 1 (:func:`utilisation_flag`)."""
    achieved = bytes_per_token * tokens_per_s / 1e9
    def sig(x: float) -> float:   # 4 significant digits: a tiny model's utilisation is not rounded to 0
        return float(f"{x:.4g}")
    cols = {"bytes_per_token": int(round(bytes_per_token)), "bandwidth_gb_s": sig(achieved),
            "peak_read_gb_s": sig(peak_gb_per_s), "bandwidth_utilisation": sig(achieved / peak_gb_per_s)}
    flag = utilisation_flag(cols["bandwidth_utilisation"])
    if flag:
        cols["bandwidth_flag"] = flag
    return cols
