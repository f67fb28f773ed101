"""The largest batch x context whose KV cache fits a memory budget beside the weights, per KV-cache format.

The bytes per token and per decode step come from :mod:`workbench.runtime.decode_bytes`.
"""
from __future__ import annotations

from workbench.runtime.decode_bytes import kv_bytes_per_token


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
    not even one sequence fits, with the reason).

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


__all__ = ["max_batch_for_budget", "budget_table"]
