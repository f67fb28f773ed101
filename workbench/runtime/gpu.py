"""What this machine's GPU can do, as the facts the GPU arm catalogue gates on (like ``runtime.cpu`` for the ISA).

fp16 GEMMs run on tensor cores from compute capability 7.0 (Volta, T4); bf16 needs 8.0 (Ampere: A10G, L4, A100, H100).
Elsewhere they still run, without tensor cores: slower, not a serving choice.
"""
from __future__ import annotations

# precision -> the compute capability (major) from which its GEMMs run on tensor cores
TENSOR_CORES_FROM = {"fp16": 7, "bf16": 8}


def gpu_summary() -> dict:
    """{"available", "name", "capability" (major, minor) or None, "fp16_tensor_cores", "bf16"} of CUDA device 0."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "name": None, "capability": None, "fp16_tensor_cores": False, "bf16": False}
    major, minor = torch.cuda.get_device_capability(0)
    return {"available": True, "name": torch.cuda.get_device_name(0), "capability": (major, minor),
            "fp16_tensor_cores": major >= TENSOR_CORES_FROM["fp16"], "bf16": major >= TENSOR_CORES_FROM["bf16"]}


def native_half(gpu: dict, precision: str) -> tuple[bool, str]:
    """(True, how) when ``precision`` ("fp16" / "bf16") GEMMs run on this GPU's tensor cores, else (False, why)."""
    if not gpu.get("available"):
        return False, "no CUDA device is visible to torch here"
    cap = "%d.%d" % tuple(gpu["capability"])
    need = TENSOR_CORES_FROM[precision]
    if gpu["capability"][0] < need:
        return False, f"{gpu['name']} (compute capability {cap}) has no {precision} tensor cores (needs {need}.0)"
    return True, f"{precision} GEMMs on {gpu['name']}'s tensor cores (compute capability {cap})"


__all__ = ["gpu_summary", "native_half", "TENSOR_CORES_FROM"]
