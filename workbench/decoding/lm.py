"""What decoding asks of a Hugging Face causal LM: its vocabulary size, an empty KV cache, and a checked prompt.

Shared by the engine (:mod:`workbench.decoding.speculative`) and the drafters (:mod:`workbench.decoding.drafters`),
which both run models this way.
"""
from __future__ import annotations

import torch

from workbench.tasks.hf_loading import context_length


def vocab_size(model) -> int:
    """The logits' width: rows of the output embedding, the token ids the model can take and produce."""
    return model.get_output_embeddings().weight.shape[0]


def new_cache(model):
    """An empty KV cache; ``DynamicCache(config=...)`` works on transformers 4.57 and 5.x alike."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def check_prompt(model, input_ids, max_new_tokens: int) -> torch.Tensor:
    """The prompt as a 1-D LongTensor, with clear errors for batches, empty prompts and context overflow."""
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 2:
        if ids.shape[0] != 1:
            raise ValueError(f"input_ids has batch size {ids.shape[0]}: this engine decodes one prompt at a time "
                             "(batch 1); loop over the prompts")
        ids = ids[0]
    if ids.dim() != 1 or ids.numel() == 0 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be non-empty integer token ids [1, T], got {tuple(ids.shape)} {ids.dtype}")
    ctx = context_length(model)
    if ctx is not None and ids.numel() + max_new_tokens > ctx:
        raise ValueError(f"prompt ({ids.numel()} tokens) + max_new_tokens ({max_new_tokens}) = "
                         f"{ids.numel() + max_new_tokens} exceeds the model's context of {ctx} tokens: shorten the "
                         f"prompt (keep its last {max(ctx - max_new_tokens, 0)} tokens) or lower max_new_tokens")
    if int(ids.max()) >= vocab_size(model) or int(ids.min()) < 0:
        raise ValueError(f"input_ids hold token ids outside the model's vocabulary (0..{vocab_size(model) - 1}): "
                         "tokenize with the model's own tokenizer")
    return ids.long()


__all__ = ["vocab_size", "new_cache", "check_prompt"]
