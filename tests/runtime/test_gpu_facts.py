"""The GPU facts the GPU arm catalogue gates on."""
from workbench.runtime.gpu import gpu_summary, native_half

T4 = {"available": True, "name": "Tesla T4", "capability": (7, 5)}
L4 = {"available": True, "name": "NVIDIA L4", "capability": (8, 9)}


def test_half_precision_needs_its_tensor_cores():
    assert native_half(L4, "bf16")[0] and native_half(L4, "fp16")[0]
    ok, why = native_half(T4, "bf16")
    assert not ok and why == "Tesla T4 (compute capability 7.5) has no bf16 tensor cores (needs 8.0)"
    assert native_half(T4, "fp16") == (True, "fp16 GEMMs on Tesla T4's tensor cores (compute capability 7.5)")
    assert native_half({"available": False}, "fp16") == (False, "no CUDA device is visible to torch here")


def test_this_machine_is_described_either_way():
    import torch

    s = gpu_summary()
    assert s["available"] is torch.cuda.is_available()
    assert (s["capability"] is None) is (not s["available"])
