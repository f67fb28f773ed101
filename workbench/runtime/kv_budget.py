"""Bytes a decoder reads and holds per token: weight bytes per decode step, KV-cache bytes per token, and the
largest batch x context that fits a memory budget.

    KV bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes per element (+ scales when quantised)

Shapes come from the model config through ``workbench.runtime.families.shape_of`` (GPT-2 spells them ``n_layer`` /
``n_head`` / ``n_embd``, Llama ``num_hidden_layers`` / ``num_attention_heads`` / ``num_key_value_heads``, Gemma sets
its own ``head_dim``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

@dataclass(frozen=True)
class KvShape:
    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config) -> "KvShape":
        """Layers, KV heads (grouped-query attention: fewer than query heads) and head size of a HF config, read
        through the family adapter (one place knows each family's attribute names)."""
        from workbench.runtime.families import shape_of

        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        shape = shape_of(config)
        return cls(shape.num_layers, shape.kv_heads, shape.head_dim)


def kv_bytes_per_token(config, bytes_per_element: float = 4, scale_bytes_per_head: float = 0) -> float:
    """KV-cache bytes one token of one sequence holds: 2 x layers x kv_heads x (head_dim x bytes + scale bytes).

    Args:
        config: a HF model config (or a :class:`KvShape`).
        bytes_per_element: 4 fp32, 2 bf16/fp16, 1 int8, 0.5 int4.
        scale_bytes_per_head: per-token-per-head scale (and zero point) bytes of a quantised cache, e.g. 4 for one
            fp32 scale.

    Example:
        >>> kv_bytes_per_token(KvShape(layers=12, kv_heads=12, head_dim=64), 2)    # 2 x 12 x 12 x 64 x 2
        36864.0
    """
    if bytes_per_element <= 0 or scale_bytes_per_head < 0:
        raise ValueError(f"bytes_per_element must be > 0 and scale bytes >= 0, got {bytes_per_element}, "
                         f"{scale_bytes_per_head}")
    shape = config if isinstance(config, KvShape) else KvShape.from_config(config)
    return float(2 * shape.layers * shape.kv_heads * (shape.head_dim * bytes_per_element + scale_bytes_per_head))


def tensor_bytes(t: torch.Tensor) -> int:
    """Storage bytes of a tensor, including the inner tensors of a tensor subclass (torchao's packed weights and
    their scales / zero points)."""
    if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
        names, _ctx = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, n)) for n in names if getattr(t, n, None) is not None)
    return t.numel() * t.element_size()


def decode_weight_bytes(model: torch.nn.Module) -> int:
    """Weight bytes one decode step reads: every distinct parameter and buffer (packed weights with their scales),
    except embedding tables used only as a lookup (a step reads one row of them, not the table). A table tied to
    the LM head is read in full and counted."""
    lookup_only = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for module in model.modules():
        if not isinstance(module, torch.nn.Embedding):
            lookup_only -= {id(p) for p in module.parameters(recurse=False)}
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in lookup_only or id(t) in seen:
            continue
        seen.add(id(t))
        total += tensor_bytes(t)
    return total


def resident_weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the weights occupy in memory: every distinct parameter and buffer, embedding tables included (a lookup
    reads one row per token, but the whole table stays resident). What a memory budget must hold beside the KV
    cache; :func:`decode_weight_bytes` is what a step reads."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total


def compute_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype activations and the KV cache take: the input embedding's (a weight-only int8/int4 model keeps
    fp32 or bf16 activations, so its first parameter's int dtype would be wrong)."""
    embed = getattr(model, "get_input_embeddings", lambda: None)()
    weight = getattr(embed, "weight", None)
    if weight is not None and weight.is_floating_point():
        return weight.dtype
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def kv_bytes_per_position(model: torch.nn.Module) -> int:
    """KV-cache bytes one sequence position of ``model`` holds, in its compute dtype (:func:`compute_dtype`: the cache
    takes it; bf16 KV for a bf16 model); 0 for a model without a transformer config (nothing to cache)."""
    config = getattr(model, "config", None)
    if config is None:
        return 0
    try:
        shape = KvShape.from_config(config)
    except ValueError:
        return 0
    return int(kv_bytes_per_token(shape, torch.empty((), dtype=compute_dtype(model)).element_size()))


def max_batch_for_budget(budget_bytes: float, kv_per_token: float, context: int, weight_bytes: float = 0) -> int:
    """Sequences of ``context`` tokens whose KV cache fits ``budget_bytes`` beside the weights.

    Raises:
        ValueError: the budget does not hold the weights and one sequence (says how much is missing).
    """
    if context < 1 or kv_per_token <= 0:
        raise ValueError(f"context must be >= 1 and KV bytes per token > 0, got {context}, {kv_per_token}")
    one = weight_bytes + context * kv_per_token
    if budget_bytes < one:
        raise ValueError(f"memory budget {budget_bytes / 2**20:.1f} MiB is too small for one sequence of {context} "
                         f"tokens: weights {weight_bytes / 2**20:.1f} MiB + KV "
                         f"{context * kv_per_token / 2**20:.1f} MiB "
                         f"= {one / 2**20:.1f} MiB; raise the budget, shorten the context or quantise the KV cache")
    return int((budget_bytes - weight_bytes) // (context * kv_per_token))


def budget_table(budget_bytes: float, config, weight_bytes: float, contexts=(512, 2048, 8192),
                 caches: dict | None = None) -> list[dict]:
    """For each KV-cache format and context: KV bytes per token and the largest batch that fits the budget (0 when
    not even one sequence fits, with the reason). ``weight_bytes``: the RESIDENT weights
    (:func:`resident_weight_bytes`, embeddings included), not the bytes a step reads.

    Args:
        caches: ``{name: (bytes_per_element, scale_bytes_per_head)}``; default fp32, bf16, int8 (fp32 scale per
            token and head), int4 (fp32 scale + zero point).
    """
    caches = caches or {"fp32": (4, 0), "bf16": (2, 0), "int8": (1, 4), "int4": (0.5, 8)}
    rows = []
    for name, (element, scale) in caches.items():
        per_token = kv_bytes_per_token(config, element, scale)
        for context in contexts:
            row = {"kv_cache": name, "context": context, "kv_bytes_per_token": per_token,
                   "budget_mib": round(budget_bytes / 2**20, 1), "weight_mib": round(weight_bytes / 2**20, 1)}
            try:
                row["max_batch"] = max_batch_for_budget(budget_bytes, per_token, context, weight_bytes)
            except ValueError as exc:
                row.update(max_batch=0, reason=str(exc))
            row["max_batch_x_context"] = row["max_batch"] * context
            rows.append(row)
    return rows


__all__ = ["KvShape", "kv_bytes_per_token", "kv_bytes_per_position", "tensor_bytes", "decode_weight_bytes",
           "resident_weight_bytes", "compute_dtype", "max_batch_for_budget", "budget_table"]
