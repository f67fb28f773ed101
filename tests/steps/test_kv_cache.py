"""KV-cache quantisation: codes per token and head, the cache attends over them, perplexity and bytes per token."""
import pytest
import torch

from workbench.core import apply
from workbench.steps.kv_cache import KvCacheQuantConfig, dequantize_kv, greedy_generate, quantize_kv, quantized_cache
from workbench.measure.quality import paired_perplexity
from workbench.tasks import get_task


@pytest.fixture(scope="module")
def lm():
    task = get_task("causal-lm")
    return task, task.baseline()


@pytest.mark.parametrize("bits, dtype, rel", [(8, torch.int8, 1 / 127), (4, torch.uint8, 1 / 15)])
def test_codes_round_trip_within_half_a_step(bits, dtype, rel):
    x = torch.randn(2, 3, 5, 64)
    codes, scale, zero = quantize_kv(x, bits)
    assert codes.dtype == dtype and scale.shape == (2, 3, 5, 1)
    err = (dequantize_kv(codes, scale, zero, torch.float32) - x).abs()
    span = x.abs().amax(-1, keepdim=True) if bits == 8 else x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)
    assert (err <= span * rel / 2 + 1e-6).all()


def test_cache_stores_codes_and_runs_the_model(lm):
    task, base = lm
    prompt = task.prompts(n=1, prompt_tokens=16)[0]
    cache = quantized_cache(8)
    base.model(input_ids=prompt, past_key_values=cache, use_cache=True)
    layer = cache.layers[0]
    assert cache.get_seq_length() == 16 and layer.parts["k"][0][0].dtype == torch.int8
    assert layer.keys.shape[-1] == 0                           # no float copy of the keys kept
    float_loop = greedy_generate(base.model, prompt, 12, bits=None)
    int8_loop = greedy_generate(base.model, prompt, 12, bits=8)
    assert float_loop.shape == int8_loop.shape == (1, 28)
    assert (float_loop == int8_loop).float().mean() > 0.9


@pytest.mark.parametrize("bits, max_pct", [(8, 0.5), (4, 3.0)])
def test_step_reports_bytes_and_a_paired_perplexity_change(lm, bits, max_pct):
    task, base = lm
    v = apply(base, KvCacheQuantConfig(bits=bits))
    # demo GPT-2: 2 x 6 layers x 4 heads x 64 dims; fp32 4 bytes vs codes + fp32 scale (+ zero point for int4)
    assert v.meta["parent_kv_bytes_per_token"] == 2 * 6 * 4 * 64 * 4
    assert v.meta["kv_bytes_per_token"] == 2 * 6 * 4 * (64 * (1 if bits == 8 else 0.5) + (4 if bits == 8 else 8))
    x = task.example_inputs(2, 32)
    assert 0 < float((v(x) - base(x)).abs().max()) < 1.0       # the cache is really in the path, and close
    ppl = paired_perplexity(task, base, v, limit=16)
    assert abs(ppl["ppl_increase_pct"]) < max_pct
    with pytest.raises(ValueError, match="bits=3"):
        KvCacheQuantConfig(bits=3)
