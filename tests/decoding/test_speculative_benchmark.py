"""benchmarks/speculative.py on tiny random models, through the arm layer: every arm makes the same tokens, the
figures are the timed calls' own, and the JSON carries the headline keys."""

import pytest
import torch
from tiny_lms import tiny_gpt2

from workbench.decoding.speculative import autoregressive_generate
pytestmark = pytest.mark.integration  # starts benchmarks/speculative.py

HEADLINE_KEYS = ("identical", "speedup_vs_target", "speedup_vs_hf_assisted", "predicted_speedup", "alpha", "c", "gamma",
                 "fast_loop_spec_speedup", "fast_loop_spec_speedup_confirmed", "selection", "prediction_error")


@pytest.fixture(scope="module")
def result():
    from workbench.arms.speculative import compare_speculative

    # same seed: the 1-layer draft shares the target's embeddings
    target, draft = (tiny_gpt2(layers, 32, seed=0, bos_token_id=0, eos_token_id=0) for layers in (2, 1))
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, 64, (1, 10), generator=gen) for _ in range(2)]
    return compare_speculative(target, draft, prompts, gamma=3, max_new_tokens=12, repeats=1, compile=False,
                               log=lambda m: None)


@pytest.mark.integration
def test_every_arm_makes_the_target_greedy_tokens(result):
    rows = {r["arm"]: r for r in result["rows"]}
    assert len(rows) == 10 and all(r["status"] == "measured" for r in rows.values()), \
        {n: r["reason"] for n, r in rows.items() if r["status"] != "measured"}
    assert result["identical"] is True and all(result["identical_per_arm"].values())
    # lossless: the agreement drop's CI is [0, 0], so every arm is eligible at tolerance 0
    assert all(r["eligible"] for r in rows.values()) and all(r["drop_ci_pts"] == [0.0, 0.0]
                                                             for r in rows.values() if not r["baseline"])
    assert result["selection"]["winner"] in rows and result["selection"]["confirmed_speedup"] is not None
    assert "no EOS stop" in result["same_work"]


@pytest.mark.integration
def test_figures_are_read_off_the_timed_calls(result):
    for key in HEADLINE_KEYS:
        assert key in result
    head = result["figures"]["fast-loop-spec"]
    assert head["target_loop"] == "fast-loop-fp32" and result["figures"]["spec-draft-hf"]["target_loop"] == "own-loop"
    # the prediction charges the verify call what it cost: E[T] / (m c + v) with the measured m, c, v
    tokens_per_round = result["predicted_speedup"] * (head["draft_calls_per_round"] * head["c"] + head["verify_cost_steps"])
    # E[T] lies in [1, gamma + 1]; the figures it is rebuilt from are rounded to 3 decimals
    assert head["draft_calls_per_round"] == 3 and 1 - 5e-3 <= tokens_per_round <= 4 + 5e-3
    assert head["alpha"] == result["alpha"] and 0 <= result["alpha"] <= 1
    assert result["prediction_error"] == pytest.approx(head["decode_speedup"] / head["predicted_speedup"] - 1, abs=2e-3)
    assert result["fast_loop_spec_speedup"] == pytest.approx(result["speedup"]["fast-loop-spec"]
                                                             / result["speedup"]["fast-loop-fp32"], rel=0.02)
    assert all(v > 0 for v in result["tokens_per_s"].values())
