"""ISA facts of this CPU and which CPU arms (precision x runtime) are worth running here.

- :func:`workbench.runtime.cpu.isa_summary` (read here): ``{avx2, avx512, avx512_bf16, vnni, amx_bf16, amx_int8}``.
- :func:`applicable_arms`: the CPU arms (torch fp32, torch / ORT dynamic int8, torch bf16, torch.compile fp32 / bf16,
  PT2E static / dynamic int8, OpenVINO fp32 / bf16 / int8 weights / static int8), each with the step configs that
  build it from the fp32 baseline, whether it applies on this ISA (and with the libraries installed here) and why.

Both are functions of the flags (plus which optional libraries import), so they can be checked with made-up flag sets.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Any

from workbench.runtime.cpu import isa_summary, native_bf16

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
    kind: str = ""   # "baseline", "int8", "bf16", "compile" (PT2E too: it compiles), "openvino": for ``--skip``

    @property
    def config(self) -> Any:
        """The arm's last step config, None for the baseline."""
        return self.steps[-1] if self.steps else None


def missing_library(*names: str) -> str | None:
    """Why an arm cannot run for want of a library ("torchao is not installed: pip install torchao"), else None."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed here: pip install {name}"
    return None


def _gate(applies: bool, reason: str, *libraries: str) -> tuple[bool, str]:
    """(applies, reason) with a missing library taking precedence: then the arm is not available here, and says so."""
    missing = missing_library(*libraries)
    return (False, f"not available here: {missing}") if missing else (applies, reason)


def _extra_arms(isa: dict, calibration: str | None, int8: tuple[bool, str], bf16: tuple[bool, str]) -> list[Arm]:
    """PT2E and OpenVINO arms. Static int8 needs a calibration set on disk (``save_calibration_set``)."""
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.steps.openvino import OpenVinoConfig
    from workbench.steps.pt2e import Pt2eConfig

    no_calib = "needs calibration data: pass calibration=save_calibration_set(task.calibration_batches(...))"
    reduce = not (isa.get("vnni") or isa.get("amx_int8"))  # 7-bit activations where u8 x s8 could overflow
    calib_ok = calibration is not None
    pt2e_static = (Pt2eConfig(mode="static", calibration=str(calibration), reduce_range=reduce),) if calib_ok else ()
    ov_static = (ExportOnnxConfig(), OpenVinoConfig.int8_static(calibration)) if calib_ok else ()
    ov_kernels = "OpenVINO CPU plugin (oneDNN brgemm kernels for this ISA)"
    return [
        Arm("torch-int8-pt2e-dynamic", (Pt2eConfig(reduce_range=reduce),),
            *_gate(int8[0], f"{int8[1]}; PT2E x86 inductor quantizer, oneDNN qlinear", "torchao"), "compile"),
        Arm("torch-int8-pt2e-static", pt2e_static,
            *_gate(int8[0] and calib_ok, f"{int8[1]}; PT2E static, calibrated" if calib_ok else no_calib, "torchao"),
            "compile"),
        Arm("ov-fp32", (ExportOnnxConfig(), OpenVinoConfig()), *_gate(True, ov_kernels, "openvino"), "openvino"),
        Arm("ov-bf16", (ExportOnnxConfig(), OpenVinoConfig.bf16()), *_gate(*bf16, "openvino"), "openvino"),
        Arm("ov-int8-weights", (ExportOnnxConfig(), OpenVinoConfig.int8_weights()),
            *_gate(True, "NNCF int8 weights, float activations: smaller, GEMMs decompress to f32", "openvino", "nncf"),
            "openvino"),
        Arm("ov-int8-static", ov_static,
            *_gate(int8[0] and calib_ok, f"{int8[1]}; NNCF static int8 (SmoothQuant)" if calib_ok else no_calib,
                   "openvino", "nncf"), "openvino"),
    ]


def applicable_arms(isa: dict | None = None, calibration: str | None = None) -> list[Arm]:
    """The CPU arms, each marked applies / not with its reason, for ``isa`` (this CPU's :func:`isa_summary` if None).

    ``calibration``: a calibration set (.npz, :func:`workbench.steps.openvino.save_calibration_set`) for the static
    int8 arms; without it they are listed as not applicable, with that reason.

    Example:
        >>> [a.name for a in applicable_arms(isa_summary(["avx2"]), calibration="calib.npz") if not a.applies]
        ['torch-bf16', 'torch-compile-bf16', 'ov-bf16']
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
    ] + _extra_arms(isa, calibration, (int8_ok, int8_why), (bf16_ok, bf16_why))


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


def won_because(name: str, fig: dict, isa: dict, shares: dict | None, skipped: dict) -> str:
    """One sentence: which arm won on this ISA, by how much, and what the profiler says ran (int8 / bf16 share)."""
    have = ", ".join(k for k, v in isa.items() if v is True) or "no SIMD extensions seen"
    ran = ", ".join(f"{share:.0%} of kernel time in {p}" for p, share in (shares or {}).items() if share >= 0.05)
    missing = "; not run: " + ", ".join(sorted(skipped)) if skipped else ""
    return (f"{name} won at {fig['speedup_b8']}x (batch 8) / {fig['speedup_b1']}x (batch 1) vs torch eager fp32 on "
            f"{isa.get('cpu', 'this CPU')} ({have}); {ran or 'no kernel profile for this backend'}{missing}")



__all__ = ["applicable_arms", "missing_library", "precision_time_shares", "won_because", "Arm"]
