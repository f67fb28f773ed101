"""KV bytes per token from GPT-2 and Llama configs, weight bytes per decode step, and what fits a memory budget."""
import pytest
import torch

from workbench.runtime.kv_budget import (KvShape, budget_table, decode_weight_bytes, kv_bytes_per_token,
                                         max_batch_for_budget, tensor_bytes)


def test_kv_bytes_read_each_family_s_names():
    from transformers import GPT2Config, LlamaConfig

    gpt2 = GPT2Config(n_layer=6, n_head=4, n_embd=256)
    assert kv_bytes_per_token(gpt2, 4) == 2 * 6 * 4 * 64 * 4
    gqa = LlamaConfig(num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, hidden_size=2048,
                      head_dim=64)
    assert KvShape.from_config(gqa) == KvShape(16, 8, 64)                   # grouped-query: 8 KV heads, not 32
    assert kv_bytes_per_token(gqa, 2) == 2 * 16 * 8 * 64 * 2
    assert kv_bytes_per_token(gqa, 1, 4) == 2 * 16 * 8 * (64 + 4)           # int8 + one fp32 scale per head
    with pytest.raises(ValueError, match="layers"):
        kv_bytes_per_token(type("C", (), {"num_attention_heads": 2, "hidden_size": 8})(), 2)


def test_weight_bytes_skip_lookup_tables_but_count_tied_heads_and_packed_scales():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=4))
    every = sum(t.numel() * t.element_size() for t in [*llama.parameters(), *llama.buffers()])   # + rotary buffer
    assert decode_weight_bytes(llama) == every - 500 * 64 * 4                 # untied input table: one row a token
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=500, n_embd=64, n_layer=1, n_head=4, n_positions=32))
    distinct = sum(t.numel() * t.element_size() for t in [*gpt2.parameters(), *gpt2.buffers()])  # wte once (tied)
    assert decode_weight_bytes(gpt2) == distinct - 32 * 64 * 4                # position table is lookup-only
    from workbench.steps.weight_only import Int8PackLinear

    q = Int8PackLinear(torch.nn.Linear(64, 32, bias=False))
    assert tensor_bytes(q.qweight) + tensor_bytes(q.scale) == 64 * 32 + 32 * 2 == decode_weight_bytes(q)


def test_budget_gives_the_largest_batch_and_a_clear_error_when_one_sequence_does_not_fit():
    assert max_batch_for_budget(1000 + 10 * 8 * 3, kv_per_token=8, context=10, weight_bytes=1000) == 3
    with pytest.raises(ValueError, match="too small for one sequence of 100 tokens.*quantise the KV cache"):
        max_batch_for_budget(2**20, kv_per_token=2**14, context=100, weight_bytes=2**19)
    shape = KvShape(12, 12, 64)
    rows = budget_table(2 * 2**30, shape, weight_bytes=2**29, contexts=(1024, 8192))
    by = {(r["kv_cache"], r["context"]): r for r in rows}
    assert by[("fp32", 1024)]["max_batch"] == int((2 * 2**30 - 2**29) // (1024 * 2 * 12 * 12 * 64 * 4))
    assert by[("int8", 1024)]["max_batch"] > 3 * by[("fp32", 1024)]["max_batch"]
    tiny = budget_table(2**29 + 1, shape, weight_bytes=2**29, contexts=(8192,))
    assert all(r["max_batch"] == 0 and "too small" in r["reason"] for r in tiny)
