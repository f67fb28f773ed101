"""What this CPU can do: its model name and ISA flags from ``/proc/cpuinfo``, and what they mean for kernels
(AVX2 / AVX-512 / VNNI / AMX, native bf16). Steps choose kernels by them, measurement records them, the arms say why
an arm does not apply; all of them read the flags here, one way.

The readings are functions of the flag list, so they can be checked with made-up flag sets.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Iterable

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "fma")
ISA_KEYS = ("avx2", "avx512", "avx512_bf16", "vnni", "amx_bf16", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """(CPU model name, the :data:`ISA_FLAGS` this CPU has) from ``/proc/cpuinfo``; no flags where it is unreadable."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, [f for f in ISA_FLAGS if f in flags]


def isa_summary(flags: Iterable[str] | None = None) -> dict[str, bool]:
    """What the CPU can do, from its ``/proc/cpuinfo`` flags (this machine's when ``flags`` is None).

    Example:
        >>> isa_summary(["avx2", "avx512f", "avx512_vnni"])["vnni"]
        True
    """
    if flags is None:
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


def cpu_isa() -> dict:
    """CPU model and the ISA extensions int8 kernels care about."""
    model, flags = cpu_model_and_flags()
    isa = isa_summary(flags)  # the one reading of the flags (avx2, avx512, vnni, amx_int8, ...)
    return {"cpu": model, "flags": flags, **isa, "amx": bool(set(flags) & {"amx_int8", "amx_tile"})}


__all__ = ["ISA_FLAGS", "ISA_KEYS", "cpu_model_and_flags", "isa_summary", "native_bf16", "native_int8", "cpu_isa"]
