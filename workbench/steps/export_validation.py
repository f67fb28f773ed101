"""Validation of an exported ONNX model against its torch parent over a grid of batch sizes x sequence lengths."""
from __future__ import annotations

import numpy as np
import torch

from workbench.tasks.hf_loading import context_length


class OnnxValidationError(ValueError):
    """The exported model disagrees with its parent past tolerance."""


# Column naming what the agreement counts: the next token for decoders, the top-1 class otherwise.
AGREEMENT_COLUMNS = {"causal-lm": "next_token_agreement"}

def hf_grid(model_config, batch_sizes, seq_lens, seed: int = 0) -> list[dict]:
    """Random-token inputs per (batch, seq); rows after the first are right-padded by different amounts.

    Padding is in the grid on purpose: a broken attention mask in the export shows up as a mismatch.
    """
    vocab = int(getattr(model_config, "vocab_size", 1000))
    limit = context_length(model_config)
    seqs = sorted({min(s, limit) if limit else s for s in seq_lens})
    gen = torch.Generator().manual_seed(seed)
    grid = []
    for b in batch_sizes:
        for s in seqs:
            ids = torch.randint(0, vocab, (b, s), generator=gen)
            mask = torch.ones(b, s, dtype=torch.long)
            for row in range(1, b):
                mask[row, s - (row * s) // (2 * b):] = 0  # row r keeps the first s - r*s/(2b) tokens
            grid.append({"input_ids": ids, "attention_mask": mask})
    return grid


def module_grid(example_inputs: dict, batch_sizes, seq_lens) -> list[dict]:
    """The example batch repeated to each batch size and cut to each sequence length (when it is that long)."""
    longest = max(v.shape[1] for v in example_inputs.values() if v.dim() > 1) if any(
        v.dim() > 1 for v in example_inputs.values()) else None
    seqs = sorted({s for s in seq_lens if longest is None or s <= longest} or {longest})
    grid = []
    for b in batch_sizes:
        for s in seqs:
            point = {}
            for name, v in example_inputs.items():
                t = v.repeat(-(-b // v.shape[0]), *([1] * (v.dim() - 1)))[:b]
                point[name] = t[:, :s] if (s and t.dim() > 1) else t
            grid.append(point)
    return grid


def _compare(ref: torch.Tensor, got: torch.Tensor, mask: torch.Tensor | None) -> tuple[float, float, int]:
    """(max abs diff, argmax agreement, positions compared) over positions where ``mask`` is 1."""
    ref, got = ref.float(), got.float()
    if ref.shape != got.shape:
        raise OnnxValidationError(f"ONNX output shape {tuple(got.shape)} != parent's {tuple(ref.shape)}")
    if mask is not None and ref.dim() == 3:  # [B, T, V]: drop padded positions
        keep = mask.bool()
        ref, got = ref[keep], got[keep]
    diff = float((ref - got).abs().max()) if ref.numel() else 0.0
    agree = (ref.argmax(-1) == got.argmax(-1)).float()
    return diff, float(agree.mean()), int(agree.numel())


def validate_export(parent, runner, grid: list[dict], kind: str, atol: float, min_agreement: float,
                    check_past: bool = False) -> dict:
    """Run parent and ONNX on every grid point; raise :class:`OnnxValidationError` past ``atol``/``min_agreement``.

    For decoders exported with a KV cache, also checks the cached path: prefill T-1 tokens, feed the last token
    with the returned cache, compare its logits with the parent's full-sequence logits at position T-1.
    """
    points, worst_diff, hits, total = [], 0.0, 0.0, 0
    for inputs in grid:
        ref = torch.as_tensor(parent(inputs))
        got = runner(inputs)
        diff, agree, n = _compare(ref, got, inputs.get("attention_mask"))
        shape = tuple(inputs["input_ids"].shape) if "input_ids" in inputs else tuple(next(iter(inputs.values())).shape)
        points.append({"shape": list(shape), "max_abs_diff": diff, "agreement": agree})
        if check_past and shape[1] >= 2:
            diff_past, agree_past = _check_cached_step(parent, runner, inputs["input_ids"])
            points[-1].update(max_abs_diff_kv=diff_past, agreement_kv=agree_past)
            diff, agree = max(diff, diff_past), min(agree, agree_past)
        worst_diff, hits, total = max(worst_diff, diff), hits + agree * n, total + n
    agreement = hits / max(total, 1)
    bad = [p for p in points if max(p["max_abs_diff"], p.get("max_abs_diff_kv", 0)) > atol
           or min(p["agreement"], p.get("agreement_kv", 1)) < min_agreement]
    if bad:
        raise OnnxValidationError(
            f"ONNX export disagrees with its parent at {len(bad)}/{len(points)} grid points (atol {atol}, min "
            f"agreement {min_agreement}); worst: {bad[:3]}. Check the export opset / custom ops, or loosen "
            "ExportOnnxConfig(atol=..., min_agreement=...) only if the difference is understood")
    label = AGREEMENT_COLUMNS.get(kind, "top1_agreement")
    return {"max_abs_diff": worst_diff, label: round(agreement, 6), "grid_points": len(points),
            "validated_kv_cache": check_past, "grid": points}


def _check_cached_step(parent, runner, ids: torch.Tensor) -> tuple[float, float]:
    full = torch.as_tensor(parent({"input_ids": ids}))[:, -1]
    out = runner.run({"input_ids": ids[:, :-1]})
    past = {p: out[p.replace("past_key_values", "present")] for p in runner.past_names}
    mask = np.ones(tuple(ids.shape), dtype=np.int64)
    last = runner.run({"input_ids": ids[:, -1:], **past, "attention_mask": mask})["logits"][:, -1]
    diff, agree, _ = _compare(full, torch.from_numpy(last), None)
    return diff, agree
