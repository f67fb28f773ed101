"""Torch weight-only int8 / int4 on the demo LM: packed kernels, fewer bytes per step, perplexity near the parent."""
import pytest
import torch

from workbench.core import apply
from workbench.measure.quality import paired_perplexity
from workbench.steps.weight_only import Int8PackLinear, WeightOnlyConfig, WeightOnlyUnavailable, apply_weight_only
from workbench.tasks import get_task


@pytest.fixture(scope="module")
def lm_task():
    return get_task("causal-lm")


@pytest.fixture(scope="module")
def base(lm_task):
    return lm_task.baseline()


def test_int8_linear_matches_the_float_layer():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 64)
    q = Int8PackLinear(linear)
    x = torch.randn(2, 3, 256)
    ref, got = linear(x), q(x)
    assert got.shape == ref.shape and got.dtype == torch.float32 and q.qweight.dtype == torch.int8
    # per-channel int8 weights + bf16 activations: within ~1% of the output scale
    assert (got - ref).abs().max() < 0.02 * ref.abs().max()


@pytest.mark.parametrize("config, max_share", [(WeightOnlyConfig.int8(), 0.30), (WeightOnlyConfig.int4(), 0.17)])
def test_step_packs_every_projection_and_keeps_perplexity(lm_task, base, config, max_share):
    v = apply(base, config)
    assert v.meta["quantized_layers"] == 25        # 6 layers x 4 projections + LM head
    share = v.meta["weight_bytes_per_step"] / v.meta["parent_weight_bytes_per_step"]
    assert 0.08 < share < max_share                # int8 ~1/4, int4 (with group scales) ~1/7 of fp32
    assert not any(isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32 for m in v.model.modules())
    assert base.model.transformer.h[0].attn.c_attn.weight.dtype == torch.float32   # parent untouched
    ppl = paired_perplexity(lm_task, base, v, limit=32)
    assert ppl["n_blocks"] == 32 and ppl["parent_perplexity"] > 1
    assert ppl["ppl_increase_ci_pct"][0] <= ppl["ppl_increase_pct"] <= ppl["ppl_increase_ci_pct"][1]
    assert abs(ppl["ppl_increase_pct"]) < 3.0
    ids = lm_task.example_inputs(2, 32)["input_ids"]
    agree = (v({"input_ids": ids}).argmax(-1) == base({"input_ids": ids}).argmax(-1)).float().mean()
    assert agree > 0.9


def test_bad_input_and_missing_kernel_are_clear(base, monkeypatch):
    with pytest.raises(ValueError, match="bits=3"):
        WeightOnlyConfig(bits=3)
    with pytest.raises(ValueError, match="group_size=100"):
        WeightOnlyConfig(bits=4, group_size=100)
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_weight_only(torch.nn.Sequential(torch.nn.LayerNorm(8)), 8)
    import workbench.steps.weight_only as wo

    def broken(*_a, **_k):
        raise NotImplementedError("no int4 kernel for this device")

    monkeypatch.setattr(wo, "_quantize_linear", broken)
    with pytest.raises(WeightOnlyUnavailable, match="not available here.*no int4 kernel"):
        apply_weight_only(torch.nn.Linear(128, 64), 4, 128)
