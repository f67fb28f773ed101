"""Lean GPT-2 draft forward: same logits as the HF model through prefill, single steps, crop and catch-up."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.decoding.lean_gpt2 import LeanGPT2, supports
from workbench.decoding.lm import new_cache


def test_lean_forward_matches_hf_through_crop_and_catch_up():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=64)).eval()
    lean, cache = LeanGPT2(model), new_cache(model)
    lean.reset()

    def hf(ids):
        with torch.inference_mode():
            return model(input_ids=ids[None], past_key_values=cache, use_cache=True).logits[0, -1]

    feeds = [torch.randint(0, 50, (9,)), torch.tensor([3]), torch.tensor([7]), "crop", torch.tensor([1, 2]),
             torch.tensor([4])]
    for feed in feeds:
        if isinstance(feed, str):   # roll back 2 positions, as after a rejected draft
            lean.crop(9)
            cache.crop(9)
            continue
        torch.testing.assert_close(lean.step(feed), hf(feed), atol=1e-4, rtol=1e-4)
    assert lean.length == cache.get_seq_length() == 12


def test_lean_refuses_other_architectures():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=4, activation_function="relu"))
    assert not supports(model)
    with pytest.raises(ValueError, match="GPT-2"):
        LeanGPT2(model)
