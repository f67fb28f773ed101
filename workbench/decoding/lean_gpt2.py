"""A lean GPT-2 decoder for drafting: the HF model's own weights, a preallocated KV cache, no per-call framework work.

A speculative draft runs gamma single-token calls per round, so its per-call overhead (mask building, cache objects,
output dataclasses: most of a small model's time on CPU) sets the cost ratio c. This forward does only the maths.
It changes nothing about losslessness: the target still decides every token. Used by ``ModelDrafter(lean=True)``
for ``model_type == "gpt2"`` drafts; other architectures keep the HF forward.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def supports(model) -> bool:
    cfg = model.config
    return (getattr(cfg, "model_type", None) == "gpt2" and cfg.activation_function in ("gelu_new", "gelu_pytorch_tanh")
            and not cfg.add_cross_attention and not cfg.scale_attn_by_inverse_layer_idx
            and not cfg.reorder_and_upcast_attn and cfg.scale_attn_weights)


class LeanGPT2:
    """``step(ids [T]) -> logits [V]`` of the last position; ``crop(n)`` keeps the first n cached positions.

    Example:
        >>> lean = LeanGPT2(draft); lean.reset()           # doctest: +SKIP
        >>> logits = lean.step(torch.tensor([1, 2, 3]))
    """

    def __init__(self, model):
        if not supports(model):
            raise ValueError(f"LeanGPT2 runs plain GPT-2 only, got {model.config.model_type!r}: use the HF forward")
        cfg, tr = model.config, model.transformer
        self.n_head, self.dim, self.eps = cfg.n_head, cfg.n_embd, cfg.layer_norm_epsilon
        self.max_len = cfg.n_positions
        self.wte, self.wpe = tr.wte.weight, tr.wpe.weight
        self.blocks = [(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight,
                        b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias,
                        b.mlp.c_proj.weight, b.mlp.c_proj.bias) for b in tr.h]
        self.ln_f = (tr.ln_f.weight, tr.ln_f.bias)
        self.head = model.lm_head.weight                         # [V, D] (tied to wte in GPT-2)
        head_dim = self.dim // self.n_head
        # cache [layers, 2 (k, v), heads, max_len, head_dim]; positions >= self.length are stale
        self.kv = torch.zeros(len(self.blocks), 2, self.n_head, self.max_len, head_dim, dtype=self.wte.dtype,
                              device=self.wte.device)
        self.length = 0

    def reset(self) -> None:
        self.length = 0

    def crop(self, n: int) -> None:
        self.length = min(self.length, n)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        t, start = ids.shape[0], self.length
        end = start + t
        x = self.wte[ids] + self.wpe[start:end]                  # [T, D]
        # T > 1 (prefill or catch-up): causal over the new positions, full over the cached ones
        mask = None if t == 1 else torch.ones(t, end, dtype=torch.bool, device=ids.device).tril(start)
        for i, (g1, b1, wqkv, bqkv, wo, bo, g2, b2, wfc, bfc, wpr, bpr) in enumerate(self.blocks):
            h = F.layer_norm(x, (self.dim,), g1, b1, self.eps)
            q, k, v = torch.addmm(bqkv, h, wqkv).view(t, 3, self.n_head, -1).permute(1, 2, 0, 3)   # 3 x [H, T, hd]
            self.kv[i, 0, :, start:end], self.kv[i, 1, :, start:end] = k, v
            att = F.scaled_dot_product_attention(q, self.kv[i, 0, :, :end], self.kv[i, 1, :, :end], attn_mask=mask,
                                                 scale=1 / math.sqrt(q.shape[-1]))
            x = x + torch.addmm(bo, att.transpose(0, 1).reshape(t, self.dim), wo)
            h = F.layer_norm(x, (self.dim,), g2, b2, self.eps)
            x = x + torch.addmm(bpr, F.gelu(torch.addmm(bfc, h, wfc), approximate="tanh"), wpr)
        self.length = end
        return F.layer_norm(x[-1], (self.dim,), *self.ln_f, self.eps) @ self.head.T
