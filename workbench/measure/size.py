"""Model size as served: bytes of the state dict in safetensors, or of the ONNX / OpenVINO files with their data.

Quantised torch modules (``torch.ao`` dynamic/static ``Linear``) keep their int8 weights in packed parameter objects,
not in ``parameters()`` nor as tensors of ``state_dict()``. They are unpacked here (int8 values, scales, zero points,
bias) so that an int8 model's bytes are counted, not dropped. Parameter counts and int8 shares come from
:mod:`workbench.runtime.weights`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from workbench.runtime.weights import onnx_int8_share, packed_modules, weight_numels


def _quantized_tensors(key: str, q: torch.Tensor) -> dict[str, torch.Tensor]:
    """A quantised tensor as plain tensors: the integer values plus its scales and zero points."""
    out = {key: q.int_repr()}
    if q.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                       torch.per_channel_affine_float_qparams):
        out[f"{key}.scales"] = q.q_per_channel_scales()
        out[f"{key}.zero_points"] = q.q_per_channel_zero_points()
    else:
        out[f"{key}.scale"] = torch.tensor([q.q_scale()], dtype=torch.float64)
        out[f"{key}.zero_point"] = torch.tensor([q.q_zero_point()], dtype=torch.int64)
    return out


def plain_state(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    """The state dict as plain tensors, packed/quantised weights unpacked; ``complete`` is False when some entry
    could not be turned into tensors (an unknown packed format)."""
    state: dict[str, torch.Tensor] = {}
    packed = packed_modules(model)
    for name, module in packed.items():
        weight, bias = module._weight_bias()
        prefix = f"{name}." if name else ""
        state.update(_quantized_tensors(prefix + "weight", weight) if weight.is_quantized
                     else {prefix + "weight": weight})
        if bias is not None:
            state[prefix + "bias"] = bias
    complete = True
    for key, value in model.state_dict().items():
        if any(key.startswith(f"{name}.") or key == name for name in packed if name):
            continue  # unpacked above
        if isinstance(value, torch.Tensor):
            state.update(_quantized_tensors(key, value) if value.is_quantized else {key: value})
        elif not isinstance(value, torch.dtype):  # a dtype tag is metadata, anything else is data we cannot see
            complete = False
    return state, complete


def serialized_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state dict saved as safetensors (what a torch server would load).

    Packed int8 weights are saved as their int8 values with scales, zero points and biases (see :func:`plain_state`);
    a state dict with entries of an unknown packed format is measured with ``torch.save`` instead.
    """
    from safetensors.torch import save_file

    state, complete = plain_state(model)
    state = {k: v.contiguous() for k, v in state.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        if complete:
            save_file(_dedupe_shared(state), str(path))
        else:
            torch.save(model.state_dict(), path)
        return os.path.getsize(path)


def _dedupe_shared(state: dict) -> dict:
    """Tied weights (embeddings / LM head) share storage; safetensors refuses duplicates, servers store them once."""
    seen, out = set(), {}
    for key, tensor in state.items():
        ptr = (tensor.data_ptr(), tensor.shape) if tensor.numel() else (key,)
        if ptr not in seen:
            seen.add(ptr)
            out[key] = tensor
    return out


def variant_size(variant) -> dict:
    """Size facts of a Variant: parameters (torch), bytes on disk (artifact file with its external data, or the
    serialised state) and, for int8 variants, the share of weights held as int8 (``int8_param_share``)."""
    from workbench.runtime import openvino_file

    row: dict = {}
    if variant.model is not None and isinstance(variant.model, torch.nn.Module):
        total, int8 = weight_numels(variant.model)
        row["params"] = total
        row["size_mb"] = round(serialized_bytes(variant.model) / 1e6, 3)
        if int8 or variant.precision == "int8":
            row["int8_param_share"] = round(int8 / total, 4) if total else 0.0
    ir = openvino_file(variant)
    if ir is not None:  # OpenVINO IR: the .xml graph and its .bin weights
        row["size_mb"] = round(sum(f.stat().st_size for f in (ir, ir.with_suffix(".bin")) if f.exists()) / 1e6, 3)
    elif variant.artifact_path:
        from workbench.runtime.onnx_files import onnx_files

        row["size_mb"] = round(sum(f.stat().st_size for f in onnx_files(variant.artifact_path) if f.exists()) / 1e6, 3)
        if variant.precision == "int8":
            row["int8_param_share"] = round(onnx_int8_share(variant.artifact_path), 4)
    return row
