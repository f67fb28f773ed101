"""Greedy decoding and teacher-forced scoring through a quantised KV cache (``workbench.steps.kv_cache``), with an
emission time per token: the int8-KV arm of :mod:`workbench.arms.llm`, timed and scored on the same path."""
from __future__ import annotations

import torch


@torch.inference_mode()
def quantized_cache_generate(model, ids: torch.Tensor, new_tokens: int, bits: int = 8):
    """Exactly ``new_tokens`` greedy tokens after ``ids`` [B, T] through an int ``bits`` KV cache, as a
    :class:`~workbench.decoding.fast_loop.DecodeResult` (TTFT and every token's time from this one call)."""
    from workbench.decoding.fast_loop import DecodeResult, StepClock
    from workbench.steps.kv_cache import quantized_cache

    cache = quantized_cache(bits)
    steps = StepClock(ids.device)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    tokens = [ids]
    for i in range(new_tokens):
        token = out.logits[:, -1:].argmax(-1)                                   # [B, 1]
        tokens.append(token)
        steps.mark()
        if i < new_tokens - 1:
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
    times = steps.times()
    return DecodeResult(torch.cat(tokens, 1), steps.start, times, [1] * new_tokens, notes=f"int{bits} KV cache")


@torch.inference_mode()
def quantized_cache_score(model, ids: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Next-token logits [B, T - 1, V] of ``ids`` [B, T], fed one token at a time through an int ``bits`` KV cache
    (every later position attends to quantised K/V, as in decoding)."""
    from workbench.steps.kv_cache import quantized_cache

    cache = quantized_cache(bits)
    rows = [model(input_ids=ids[:, i:i + 1], past_key_values=cache, use_cache=True).logits[:, -1]
            for i in range(ids.shape[1] - 1)]
    return torch.stack(rows, 1)


__all__ = ["quantized_cache_generate", "quantized_cache_score"]
