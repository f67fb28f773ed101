"""What decoding asks of a Hugging Face causal LM: its vocabulary size and device, an empty KV cache, a checked
prompt, a prefill call, and a clock that covers queued GPU work.

Shared by the engine (:mod:`workbench.decoding.speculative`) and the drafters (:mod:`workbench.decoding.drafters`),
which both run models this way.
"""
from __future__ import annotations

import functools
import inspect
import time

import torch

from workbench.tasks.hf_loading import context_length


def vocab_size(model) -> int:
    """The logits' width: rows of the output embedding, the token ids the model can take and produce."""
    return model.get_output_embeddings().weight.shape[0]


def model_device(model) -> torch.device:
    """Where the model's weights live: sequences, drafts and masks are built there, never on the host by default."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` after waiting for the device's queued work (CUDA), so a phase's time covers its kernels."""
    from workbench.runtime.torch_runner import synchronize

    synchronize(torch.device(device).type)
    return time.perf_counter()


@functools.lru_cache(maxsize=None)
def _takes_logits_to_keep(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def last_logits_only(model) -> dict:
    """``{"logits_to_keep": 1}`` where the model's forward takes it (HF causal LMs since 4.45), else nothing."""
    return {"logits_to_keep": 1} if _takes_logits_to_keep(type(model)) else {}


def prefill(model, ids: torch.Tensor, cache) -> None:
    """Feed ``ids`` [T] into ``cache`` in one forward call; the logits are not needed (only the last row is made)."""
    model(input_ids=ids[None], past_key_values=cache, use_cache=True, **last_logits_only(model))


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


__all__ = ["vocab_size", "model_device", "clock", "last_logits_only", "prefill", "new_cache", "check_prompt"]
