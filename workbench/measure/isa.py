"""ISA facts of this CPU: what it can do and what that means for the kernels that run on it.

(The flags themselves, and whether bf16 / int8 GEMMs have a fast path here, are read in :mod:`workbench.runtime.cpu`.)
- :func:`precision_time_shares`: a kernel profile grouped by the precision its kernels compute in.
- :func:`won_because`: one sentence on why an arm won on this ISA.

The CPU arms these facts select live in :mod:`workbench.arms.cpu` (measuring builds variants, and measure sits
below steps' users). All are functions of the flags, so they can be checked with made-up flag sets.
"""
from __future__ import annotations

import re
# Kernel / op names that do int8 arithmetic, per runtime: ORT (MatMulInteger, QLinearMatMul, QAttention,
# DynamicQuantizeMatMul), torch (quantized::linear_dynamic, onednn::qlinear_pointwise), OpenVINO (..._I8 / _U8).
_INT8 = re.compile(r"(_[iu]8$)|integer|qlinear|qattention|quantizematmul|quantized::linear|qgemm", re.I)
_GLUE = re.compile(r"quantize|dequantize", re.I)


def precision_time_shares(profile: dict[str, float]) -> dict[str, float]:
    """Kernel-time shares of a profile (name -> share, see ``workbench.runtime.kernel_profile``) grouped into
    "int8" (int8 GEMM kernels), "bf16", "quant glue" (quantize / dequantize) and "float" (the rest)."""
    out: dict[str, float] = {}
    for name, share in profile.items():
        group = ("int8" if _INT8.search(name) else "bf16" if "bf16" in name.lower()
                 else "quant glue" if _GLUE.search(name) else "float")
        out[group] = round(out.get(group, 0.0) + share, 4)
    return out


def won_because(name: str, speedups: dict, isa: dict, shares: dict | None, skipped: dict) -> str:
    """One sentence: which arm won on this ISA, by how much (``speedups``: label -> ratio, e.g. {"batch 8": 3.1}),
    and what the profiler says ran (int8 / bf16 share)."""
    have = ", ".join(k for k, v in isa.items() if v is True) or "no SIMD extensions seen"
    ran = ", ".join(f"{share:.0%} of kernel time in {p}" for p, share in (shares or {}).items() if share >= 0.05)
    missing = "; not run: " + ", ".join(sorted(skipped)) if skipped else ""
    by = " / ".join(f"{ratio}x ({label})" for label, ratio in speedups.items() if ratio is not None) or "?x"
    return (f"{name} won at {by} vs torch eager fp32 on {isa.get('cpu', 'this CPU')} ({have}); "
            f"{ran or 'no kernel profile for this backend'}{missing}")


__all__ = ["precision_time_shares", "won_because"]
