"""In-process step times: the figures read from hf_generate's emission times, batch sizes, bad input, a tiny Llama."""
from __future__ import annotations

import pytest
import torch

from workbench.decoding.fast_loop import DecodeResult
from workbench.measure.step_times import StepTimes, batch_sizes, measure_step_times


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=64)).eval()


def test_batch_sizes_are_powers_of_two_up_to_the_width():
    assert batch_sizes(1) == [1] and batch_sizes(8) == [1, 2, 4, 8] and batch_sizes(6) == [1, 2, 4, 6]
    with pytest.raises(ValueError, match="max batch"):
        batch_sizes(0)


def test_figures_come_from_the_calls_emission_times(monkeypatch):
    # a fake generate with known clocks: prefill 30 ms, then a step of 10 ms x batch; the median over calls is kept
    import workbench.decoding.fast_loop as fast_loop

    calls = []

    def fake(model, ids, new):
        b = ids.shape[0]
        calls.append((b, ids.shape[1], new))
        jitter = 0.005 if len(calls) % 3 == 0 else 0.0           # one slow call in three: the median ignores it
        step = 0.010 * b + jitter
        times = [0.030 + jitter + k * step for k in range(new)]
        return DecodeResult(torch.zeros(b, ids.shape[1] + new, dtype=torch.long), 0.0, times, [1] * new)

    monkeypatch.setattr(fast_loop, "hf_generate", fake)
    t = measure_step_times(tiny_llama(), prompt_tokens=16, new_tokens=5, batches=[4, 1, 2], seconds_per_batch=1e-9,
                           min_calls=3, max_calls=3, threads=None)
    assert t.prefill_s == pytest.approx(0.030)
    assert t.tpot_s == pytest.approx({1: 0.010, 2: 0.020, 4: 0.040})
    assert t.calls == {1: 3, 2: 3, 4: 3}
    assert calls[:4] == [(1, 8, 2)] + [(1, 16, 5)] * 3            # one short warm-up, then 3 whole requests
    assert t.as_dict()["tpot_ms"] == {"1": 10.0, "2": 20.0, "4": 40.0} and t.prompt_tokens == 16


def test_tiny_llama_in_process():
    before = torch.get_num_threads()
    t = measure_step_times(tiny_llama(), prompt_tokens=8, new_tokens=4, batches=[1, 2], seconds_per_batch=0.01,
                           threads=1, max_calls=3)
    torch.set_num_threads(before)
    assert set(t.tpot_s) == {1, 2} and t.threads == 1 and all(1 <= n <= 3 for n in t.calls.values())
    assert 0 < t.prefill_s < 5 and all(0 < v < 5 for v in t.tpot_s.values())
    assert t.tpot_at(2) == t.tpot_s[2]


def test_a_generate_without_per_step_times_is_refused(monkeypatch):
    import workbench.decoding.fast_loop as fast_loop

    monkeypatch.setattr(fast_loop, "hf_generate", lambda model, ids, new: DecodeResult(ids, 0.0, [0.1], [new], "one"))
    with pytest.raises(RuntimeError, match="per-step clock"):
        measure_step_times(tiny_llama(), prompt_tokens=8, new_tokens=4, batches=[1], seconds_per_batch=0.01)


@pytest.mark.parametrize("kw, match", [(dict(batches=[2, 4]), "including 1"), (dict(batches=[]), "including 1"),
                                       (dict(new_tokens=1), "new tokens"), (dict(seconds_per_batch=0), "seconds")])
def test_bad_input_is_refused(kw, match):
    args = dict(prompt_tokens=8, new_tokens=4, batches=[1], seconds_per_batch=0.01) | kw
    with pytest.raises(ValueError, match=match):
        measure_step_times(object(), **args)


def test_interpolation_edges():
    t = StepTimes(0.01, {2: 0.02, 4: 0.04})
    assert t.tpot_at(1) == 0.02 and t.tpot_at(3) == pytest.approx(0.03) and t.tpot_at(6) == pytest.approx(0.06)
    assert StepTimes(0.01, {1: 0.02}).tpot_at(8) == 0.02
    with pytest.raises(ValueError, match="batch"):
        t.tpot_at(0)
