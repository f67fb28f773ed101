"""Tiny random HF models saved locally with a tokenizer trained here (no hub): Llama classifier/LM, T5, BART."""
from __future__ import annotations

from pathlib import Path

import torch

TEXTS = ["Return the logger with the given name.", "Create an event loop and run the coroutine.",
         "Parse the XML element and return its text.", "Open the file and read all lines.",
         "Compute the checksum of a block of bytes.", "Split the path into head and tail.",
         "Sort the list in place and return None.", "Format the date as an ISO string."] * 4


def tiny_tokenizer(specials: dict[str, str], vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on TEXTS, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=specials.get("unk_token")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=["input_ids", "attention_mask"], **specials)


def save(model, tokenizer, path: Path, safe: bool = True) -> Path:
    model.save_pretrained(path, safe_serialization=safe)
    tokenizer.save_pretrained(path)
    return path


def llama(path: Path, head: str = "classifier", safe: bool = True) -> Path:
    """A 2-layer, hidden-32 Llama; its tokenizer has no pad token, as Llama's does not."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
    )

    tok = tiny_tokenizer({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, num_labels=3)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg) if head == "classifier" else LlamaForCausalLM(cfg)
    return save(model.eval(), tok, path, safe)


def t5(path: Path, tokenizer_pad: bool = True) -> Path:
    """A 2-layer T5. ``tokenizer_pad=False``: "<pad>" is in the vocabulary and the config's ``pad_token_id``, but the
    saved tokenizer names no pad token (as some users' conversions do)."""
    from transformers import T5Config, T5ForConditionalGeneration

    tok = tiny_tokenizer({"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    pad = tok.pad_token_id
    if not tokenizer_pad:
        tok.pad_token = None
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   pad_token_id=pad, eos_token_id=tok.eos_token_id,
                   decoder_start_token_id=pad, initializer_factor=8.0)  # varied greedy output
    torch.manual_seed(0)
    return save(T5ForConditionalGeneration(cfg).eval(), tok, path)


def bart(path: Path) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration

    tok = tiny_tokenizer({"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    cfg = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                     decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                     pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     decoder_start_token_id=tok.eos_token_id, forced_bos_token_id=None, forced_eos_token_id=None,
                     init_std=0.5)
    torch.manual_seed(0)
    return save(BartForConditionalGeneration(cfg).eval(), tok, path)
