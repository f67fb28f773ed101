"""ISA facts of this CPU: what it can do and what that means for the kernels that run on it.

- :func:`isa_summary`: ``{avx2, avx512, avx512_bf16, vnni, amx_bf16, amx_int8}`` from the CPU flags.
- :func:`native_bf16` / :func:`native_int8`: whether bf16 / int8 GEMMs have a fast path here, and which.
- :func:`precision_time_shares`: a kernel profile grouped by the precision its kernels compute in.
- :func:`won_because`: one sentence on why an arm won on this ISA.

The CPU arms these facts select live in :mod:`workbench.arms.cpu` (measuring builds variants, and measure sits
below steps' users). All are functions of the flags, so they can be checked with made-up flag sets.
"""
from __future__ import annotations

import re
from typing import Iterable

ISA_KEYS = ("avx2", "avx512", "avx512_bf16", "vnni", "amx_bf16", "amx_int8")


def isa_summary(flags: Iterable[str] | None = None) -> dict[str, bool]:
    """What the CPU can do, from its ``/proc/cpuinfo`` flags (this machine's when ``flags`` is None).

    Example:
        >>> isa_summary(["avx2", "avx512f", "avx512_vnni"])["vnni"]
        True
    """
    if flags is None:
        from workbench.measure.environment import cpu_model_and_flags

        flags = cpu_model_and_flags()[1]
    has = set(flags)
    return {"avx2": "avx2" in has, "avx512": "avx512f" in has, "avx512_bf16": "avx512_bf16" in has,
            "vnni": bool(has & {"avx512_vnni", "avx_vnni"}), "amx_bf16": "amx_bf16" in has,
            "amx_int8": "amx_int8" in has}


def native_bf16(isa: dict) -> tuple[bool, str]:
    """(True, how) when bf16 GEMMs run natively (AMX-BF16 or AVX512-BF16), else (False, why they would be emulated)."""
    if isa.get("amx_bf16"):
        return True, "AMX-BF16: bf16 GEMMs run on AMX tiles (tdpbf16ps)"
    if isa.get("avx512_bf16"):
        return True, "AVX512-BF16: bf16 dot products use vdpbf16ps"
    return False, "no AMX/AVX512-BF16: bf16 would run emulated (converted to fp32 around every GEMM)"


def native_int8(isa: dict) -> tuple[bool, str]:
    """(True, which int8 GEMM path runs fast here) or (False, why int8 kernels have no fast path)."""
    if isa.get("amx_int8"):
        return True, "AMX-INT8: int8 GEMMs run on AMX tiles (tdpbusd)"
    if isa.get("vnni"):
        return True, "VNNI: int8 GEMMs use vpdpbusd"
    if isa.get("avx2"):
        return True, "AVX2 only: int8 GEMMs use vpmaddubsw (at best ~2x over fp32; 7-bit weights avoid overflow)"
    return False, "no AVX2: the int8 kernels (fbgemm / ORT MLAS) have no fast path here"


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


__all__ = ["isa_summary", "native_bf16", "native_int8", "precision_time_shares", "won_because", "ISA_KEYS"]
