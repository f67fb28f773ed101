"""bf16 weights with fp32 activations: the same logits as fp32 compute on bf16-rounded weights (one-row and
multi-row paths), half the weight bytes a step reads, the compiled fast loop's greedy tokens equal HF's on the same
model, and bad input refused with the fix."""
import copy

import pytest
import torch

from workbench.steps.bf16_weights import Bf16WeightLinear, bf16_weights


def tiny_llama(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    for p in model.parameters():   # peaked logits: greedy choices do not hinge on rounding
        p.data.normal_(0, 0.3)
    return model


def rounded(model):
    """The fp32 model with every Linear weight rounded to bf16 and back: what bf16_weights computes."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.data = m.weight.data.to(torch.bfloat16).float()
    return out


def test_logits_are_fp32_compute_on_bf16_rounded_weights_and_the_weights_halve():
    from workbench.runtime.kv_budget import decode_weight_bytes

    model = tiny_llama()
    ref, before = rounded(model), decode_weight_bytes(model)
    wo = bf16_weights(copy.deepcopy(model))
    assert isinstance(wo.lm_head, Bf16WeightLinear) and wo.lm_head.weight.dtype == torch.bfloat16
    assert wo.model.embed_tokens.weight.dtype == torch.float32 and wo.weight_only["layers"] == 2 * 7 + 1
    ids = torch.randint(0, 64, (2, 9))
    with torch.inference_mode():
        torch.testing.assert_close(wo(ids).logits, ref(ids).logits, atol=1e-4, rtol=1e-4)   # multi-row: F.linear
        one = ids[:1, :1]
        torch.testing.assert_close(wo(one).logits, ref(one).logits, atol=1e-4, rtol=1e-4)   # one row: the reduction
    linear_bytes = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert before - decode_weight_bytes(wo) == linear_bytes * 2   # 4 -> 2 bytes a weight


def test_compiled_fast_loop_gives_hf_greedy_tokens_on_the_same_weights():
    from workbench.decoding.fast_loop import FastDecoder

    wo = bf16_weights(tiny_llama())
    ids = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        hf = wo.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    dec = FastDecoder(wo, max_batch_size=1, max_cache_len=32)
    res = dec.generate(ids, 12)
    assert dec.compiled, dec.reason
    assert torch.equal(res.tokens, hf)
    again = torch.randint(0, 64, (1, 5), generator=torch.Generator().manual_seed(2))   # a new prompt length
    with torch.inference_mode():
        hf_again = wo.generate(again, attention_mask=torch.ones_like(again), max_new_tokens=12, do_sample=False,
                               eos_token_id=None, pad_token_id=0)
    assert torch.equal(dec.generate(again, 12).tokens, hf_again)


def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no fp32 nn.Linear"):
        bf16_weights(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="already weight-only"):
        bf16_weights(bf16_weights(torch.nn.Sequential(torch.nn.Linear(4, 4))))
