"""Choosing gamma by timing the speculative fast loop at each candidate: every candidate is measured on the same
calibration prompts, the pick is the lowest per-token decode time, and bad input names the fix."""
import json

import pytest
import torch

from workbench.measure.speculative_gamma import choose_gamma


def gpt2(layers, seed):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=layers, n_embd=32, n_head=2, n_positions=64, vocab_size=64, bos_token_id=0,
                        eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def pair_and_prompts():
    gen = torch.Generator().manual_seed(3)
    return gpt2(2, 0), gpt2(1, 0), [torch.randint(1, 64, (1, 6), generator=gen) for _ in range(2)]


def test_each_candidate_is_timed_and_the_fastest_per_token_is_picked(pair_and_prompts):
    target, draft, prompts = pair_and_prompts
    choice = choose_gamma(target, draft, prompts, candidates=(1, 3), max_new_tokens=8, rounds=2, compile=False,
                          progress=False)
    assert set(choice.decode_ms_per_token) == {1, 3} and all(v > 0 for v in choice.decode_ms_per_token.values())
    assert choice.gamma == min(choice.decode_ms_per_token, key=choice.decode_ms_per_token.get)
    assert all(0 <= a <= 1 for a in choice.alpha.values())
    assert (choice.prompts, choice.rounds) == (2, 2)
    figures = json.loads(json.dumps(choice.as_dict()))   # JSON-ready, for the benchmark's last line
    assert figures["gamma"] == choice.gamma and set(figures["decode_ms_per_token"]) == {"1", "3"}


@pytest.mark.parametrize("kwargs,match", [({"candidates": ()}, "proposal lengths"),
                                          ({"candidates": (0, 2)}, "proposal lengths"),
                                          ({"candidates": (2, 2)}, "repeats"),
                                          ({"rounds": 0}, "at least 1 timed round")])
def test_bad_input_is_refused_with_the_fix(pair_and_prompts, kwargs, match):
    target, draft, prompts = pair_and_prompts
    with pytest.raises(ValueError, match=match):
        choose_gamma(target, draft, prompts, compile=False, progress=False, **kwargs)
    with pytest.raises(ValueError, match="calibration prompts"):
        choose_gamma(target, draft, [], compile=False, progress=False)
