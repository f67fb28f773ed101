"""Model size: parameter count and bytes as served (state dict in safetensors, or the ONNX file)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def serialized_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state dict saved as safetensors (what a torch server would load)."""
    from safetensors.torch import save_file

    # Quantised modules keep packed weights outside parameters(); fall back to torch.save for them.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        try:
            save_file(_dedupe_shared(state), str(path))
        except Exception:
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
    """Size facts of a Variant: parameters (torch) and bytes on disk (artifact file or serialised state)."""
    row: dict = {}
    if variant.model is not None and isinstance(variant.model, torch.nn.Module):
        row["params"] = parameter_count(variant.model)
        row["size_mb"] = round(serialized_bytes(variant.model) / 1e6, 3)
    if variant.artifact_path:
        path = Path(variant.artifact_path)
        files = [path] + sorted(path.parent.glob(path.name + "*.data"))  # external-data ONNX files count too
        row["size_mb"] = round(sum(f.stat().st_size for f in files if f.exists()) / 1e6, 3)
    return row
