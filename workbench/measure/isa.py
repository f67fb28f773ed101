"""ISA facts of this CPU and which CPU arms (precision x runtime) are worth running here.

- :func:`isa_summary`: ``{avx2, avx512, avx512_bf16, vnni, amx_bf16, amx_int8}`` from the CPU flags.
- :func:`applicable_arms`: the CPU arms (torch fp32, torch / ORT dynamic int8, torch bf16, torch.compile fp32 / bf16),
  each with the step configs that build it from the fp32 baseline, whether it applies on this ISA and why.

Both are pure functions of the flags, so they can be checked with made-up flag sets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

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


def _int8_reason(isa: dict) -> tuple[bool, str]:
    if isa.get("amx_int8"):
        return True, "AMX-INT8: int8 GEMMs run on AMX tiles (tdpbusd)"
    if isa.get("vnni"):
        return True, "VNNI: int8 GEMMs use vpdpbusd"
    if isa.get("avx2"):
        return True, "AVX2 only: int8 GEMMs use vpmaddubsw (at best ~2x over fp32; 7-bit weights avoid overflow)"
    return False, "no AVX2: the int8 kernels (fbgemm / ORT MLAS) have no fast path here"


@dataclass(frozen=True)
class Arm:
    """One CPU arm: ``steps`` (configs applied in order to the fp32 baseline; empty for the baseline itself),
    whether it ``applies`` on this ISA and the ``reason``."""

    name: str
    steps: tuple = ()
    applies: bool = True
    reason: str = ""
    kind: str = ""   # "baseline", "int8", "bf16", "compile": for ``--skip``

    @property
    def config(self) -> Any:
        """The arm's last step config, None for the baseline."""
        return self.steps[-1] if self.steps else None


def applicable_arms(isa: dict | None = None) -> list[Arm]:
    """The CPU arms, each marked applies / not with its reason, for ``isa`` (this CPU's :func:`isa_summary` if None).

    Example:
        >>> [a.name for a in applicable_arms(isa_summary(["avx2"])) if not a.applies]
        ['torch-bf16', 'torch-compile-bf16']
    """
    from workbench.steps.compile import CompileConfig
    from workbench.steps.cpu_precision import CpuPrecisionConfig
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    isa = isa_summary() if isa is None else isa
    int8_ok, int8_why = _int8_reason(isa)
    bf16_ok, bf16_why = native_bf16(isa)
    if isa.get("vnni") or isa.get("amx_int8"):
        ort_preset, preset_why = QuantizeDynamicConfig.per_channel_int8(), "per-channel 8-bit weights"
    else:
        ort_preset, preset_why = QuantizeDynamicConfig.avx2(), "avx2 preset: per-channel 7-bit weights"
    vector = "AVX-512" if isa.get("avx512") else "AVX2" if isa.get("avx2") else None
    compile_why = (f"inductor fuses elementwise ops into {vector} C++ kernels; GEMMs stay oneDNN/MKL" if vector
                   else "no AVX2: inductor's C++ kernels would be scalar")
    return [
        Arm("torch-fp32", (), True, "baseline: eager fp32", "baseline"),
        Arm("torch-int8-dynamic", (QuantizeDynamicConfig(),), int8_ok, int8_why, "int8"),
        Arm("ort-int8-dynamic", (ExportOnnxConfig(), ort_preset), int8_ok, f"{int8_why}; {preset_why}", "int8"),
        Arm("torch-bf16", (CpuPrecisionConfig(),), bf16_ok, bf16_why, "bf16"),
        Arm("torch-compile-fp32", (CompileConfig(),), vector is not None, compile_why, "compile"),
        Arm("torch-compile-bf16", (CpuPrecisionConfig(), CompileConfig()), bf16_ok and vector is not None,
            bf16_why if not bf16_ok else f"{bf16_why}; {compile_why}", "compile"),
    ]


__all__ = ["isa_summary", "applicable_arms", "native_bf16", "Arm", "ISA_KEYS"]
