"""KV-cache quantisation of a torch decoder: keys and values stored as int8 (or int4) per token and head.

An in-project quantiser (no maintained CPU implementation is installed here: transformers' ``QuantizedCache`` needs
``optimum-quanto`` or ``hqq``, both on PyPI but not in this environment). Each new key/value vector of one token and
one head (``head_dim`` numbers) gets its own scale: int8 symmetric (one fp32 scale), int4 asymmetric (fp32 scale +
zero point; the 4-bit codes are held one per byte here, so the ``kv_bytes_per_token`` figure is what a packed
store holds, not this one's). The cache is a transformers ``DynamicCache`` whose layers store the codes and hand
attention the dequantised keys/values, so every forward through it (prefill, each decode step, a perplexity
block) attends over quantised K/V exactly as a quantised cache would.

The step returns a variant whose runner runs the model through that cache, so ``task.evaluate`` gives the
perplexity with a quantised KV cache; :func:`greedy_generate` is the simple decode loop over it.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.runtime.threads import torch_threads
from workbench.runtime.torch_runner import TorchRunner

KV_BITS = (8, 4)


def quantize_kv(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [B, H, T, D] -> (codes int8/uint8 [B, H, T, D], scale [B, H, T, 1], zero [B, H, T, 1]) per token and head."""
    x = x.float()
    if bits == 8:
        scale = (x.abs().amax(-1, keepdim=True) / 127).clamp(min=1e-8)
        return (x / scale).round().clamp(-127, 127).to(torch.int8), scale, torch.zeros_like(scale)
    low, high = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=1e-8)
    return ((x - low) / scale).round().clamp(0, 15).to(torch.uint8), scale, low


def dequantize_kv(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (codes.float() * scale + zero).to(dtype)


def _quantized_layer_class():
    from transformers.cache_utils import DynamicLayer

    class QuantizedKVLayer(DynamicLayer):
        """A DynamicLayer whose ``keys`` / ``values`` are integer codes with per-token-per-head scales."""

        def __init__(self, bits: int):
            super().__init__()
            self.bits = bits

        def lazy_initialization(self, key_states: torch.Tensor):
            super().lazy_initialization(key_states)
            self.parts = {"k": [], "v": []}   # (codes, scale, zero) chunks, one per update

        def update(self, key_states, value_states, cache_kwargs=None):
            if not self.is_initialized:
                self.lazy_initialization(key_states)
            self.parts["k"].append(quantize_kv(key_states, self.bits))
            self.parts["v"].append(quantize_kv(value_states, self.bits))
            keys, values = (torch.cat([dequantize_kv(*p, self.dtype) for p in self.parts[n]], dim=-2) for n in "kv")
            # keep no float copy alive: the codes are the cache; empty [B, H, T, 0] tensors keep the shape facts
            self.keys = key_states.new_empty((*keys.shape[:-1], 0))
            self.values = value_states.new_empty((*values.shape[:-1], 0))
            return keys, values

        def get_seq_length(self) -> int:
            return sum(p[0].shape[-2] for p in self.parts["k"]) if self.is_initialized else 0

    return QuantizedKVLayer


def quantized_cache(bits: int = 8):
    """An empty transformers ``DynamicCache`` that stores K/V as ``bits``-bit codes."""
    from transformers import DynamicCache

    if bits not in KV_BITS:
        raise ValueError(f"KV cache bits={bits} unsupported: use one of {KV_BITS}")
    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(_quantized_layer_class(), bits)
    return cache


@torch.inference_mode()
def greedy_generate(model, input_ids: torch.Tensor, max_new_tokens: int, bits: int | None = 8) -> torch.Tensor:
    """Greedy decoding through a quantised KV cache (``bits=None``: a float DynamicCache): [B, T] -> [B, T + new]."""
    from transformers import DynamicCache

    cache = DynamicCache() if bits is None else quantized_cache(bits)
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True)
    tokens = [input_ids]
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1:].argmax(-1)
        tokens.append(nxt)
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
    return torch.cat(tokens, dim=1)


class KvQuantRunner(TorchRunner):
    """A :class:`TorchRunner` whose forward runs through a fresh quantised KV cache (perplexity with int8/int4 KV)."""

    def __init__(self, module, bits: int, device="cpu", input_names=None, threads=None):
        super().__init__(module, device, input_names, threads)
        self.bits = bits

    def with_threads(self, threads: int) -> "KvQuantRunner":
        return KvQuantRunner(self.module, self.bits, self.device, self.input_names, threads)

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        feed = {k: torch.as_tensor(v).to(self.device) for k, v in inputs.items()
                if self.input_names is None or k in self.input_names}
        with torch_threads(self.threads), torch.inference_mode():
            out = self.module(**feed, past_key_values=quantized_cache(self.bits), use_cache=True)
        return out.logits.float().cpu()


@dataclass(frozen=True)
class KvCacheQuantConfig:
    """KV-cache quantisation.

    Args:
        bits: 8 (symmetric, one scale per token and head) or 4 (asymmetric, scale + zero point).

    Example:
        >>> kv8 = apply(task.baseline(), KvCacheQuantConfig())           # doctest: +SKIP
        >>> task.evaluate(kv8).value, kv8.meta["kv_bytes_per_token"]
    """

    bits: int = 8

    def __post_init__(self):
        if self.bits not in KV_BITS:
            raise ValueError(f"KV cache bits={self.bits} unsupported: use one of {KV_BITS}")

    @classmethod
    def int4(cls) -> "KvCacheQuantConfig":
        return cls(bits=4)


@register_step("kv_cache_quant", KvCacheQuantConfig)
def kv_cache_quant_step(variant: Variant, config: KvCacheQuantConfig) -> Variant:
    """A variant of a torch decoder that runs through an int8 / int4 KV cache; meta gives KV bytes per token."""
    from workbench.runtime.kv_budget import kv_bytes_per_token

    module = require_torch_module(variant, "kv_cache_quant", "apply it to a torch decoder (HF causal LM)")
    if not hasattr(module, "config"):
        raise ValueError(f"kv_cache_quant needs a Hugging Face causal LM (with .config), got {type(module).__name__}")
    element = {8: 1, 4: 0.5}[config.bits]
    scale_bytes = {8: 4, 4: 8}[config.bits]     # fp32 scale (+ fp32 zero point for int4) per token and head
    float_bytes = next(module.parameters()).element_size()
    runner = KvQuantRunner(module, config.bits, variant.device, getattr(variant.runner, "input_names", None),
                           getattr(variant.runner, "threads", None))
    meta = {**variant.meta, "kv_bits": config.bits,
            "kv_bytes_per_token": kv_bytes_per_token(module.config, element, scale_bytes),
            "parent_kv_bytes_per_token": kv_bytes_per_token(module.config, float_bytes)}
    return dataclasses.replace(variant, name=f"{variant.name}-kv-int{config.bits}", runner=runner, meta=meta, id="")


__all__ = ["KvCacheQuantConfig", "kv_cache_quant_step", "quantized_cache", "greedy_generate", "quantize_kv",
           "dequantize_kv", "KvQuantRunner"]
