"""Named workloads: shapes, refusals, and prompts that share exactly the system prompt asked for."""
from __future__ import annotations

import pytest

from workbench.serving.engine.workloads import COST_WORKLOADS, WORKLOADS, Workload, get_workload


def test_named_shapes_fit_the_default_context_and_price_both_ways():
    from workbench.serving.engine.engine_args import EngineArgs

    for w in WORKLOADS.values():
        assert w.prompt_tokens + w.new_tokens <= EngineArgs().max_model_len, w
    lp, la = get_workload("long-prompt"), get_workload("long-answer")
    assert set(COST_WORKLOADS) == {"long-prompt", "long-answer"}
    assert lp.prompt_tokens / lp.new_tokens > 10 and la.new_tokens / la.prompt_tokens > 5
    shared = get_workload("shared-prefix")
    assert shared.shared_prefix_tokens // 128 == 3 and shared.without_prefix().shared_prefix_tokens == 0
    assert shared.columns()["workload"] == "shared-prefix"


def test_bad_workloads_are_refused():
    with pytest.raises(ValueError, match="unknown workload 'chatty'.*long-prompt"):
        get_workload("chatty")
    with pytest.raises(ValueError, match="shorter than the prompt"):
        Workload("x", 32, 8, 32)
    with pytest.raises(ValueError, match="ITL needs two"):
        Workload("x", 32, 1)


def test_shared_prefix_prompts_share_their_start(tiny_llama_task):
    from transformers import AutoTokenizer

    wl = Workload("t", 64, 4, 48)
    texts, lens = wl.prompts(tiny_llama_task.model_dir, 3, seed=1)
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_task.model_dir))
    ids = [tok(t)["input_ids"] for t in texts]
    common = next(i for i in range(min(map(len, ids))) if len({tuple(x[:i + 1]) for x in ids}) > 1)
    assert 47 <= common <= 49 and all(63 <= n <= 66 for n in lens)   # 48 shared of 64, a join may move a token
    distinct, _ = wl.without_prefix().prompts(tiny_llama_task.model_dir, 3, seed=1)
    assert len({t[:20] for t in distinct}) == 3


def test_confirmed_engine_trials_run_on_the_winners_server_at_half_its_goodput(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from workbench.serving.engine import trials

    calls = []
    monkeypatch.setattr(trials, "workload_costs", lambda server, ckpt, slo, client, out, price, n: calls.append(
        ("workloads", server, ckpt, slo, n)) or [{"workload": "long-prompt"}])
    monkeypatch.setattr(trials, "prefix_cache_trial", lambda server, ckpt, rate, slo, client, out, n: calls.append(
        ("prefix", rate)) or {"prefix_cache_ttft_ratio": 0.5, "prefix_cache_ttft_ratio_idle": 0.4,
                              "ttft_floor_ms": 9.0})
    found = {}
    hook = trials.on_confirmed_engine(tmp_path, price=None, n=7, found=found)
    cand, res = SimpleNamespace(bundle=tmp_path / "b", goodput_per_s=0.9), SimpleNamespace(slo_ttft_ms=500,
                                                                                          slo_itl_ms=80)
    hook("server", cand, res)
    assert calls == [("workloads", "server", tmp_path / "b" / "checkpoint", (500, 80), 7), ("prefix", 0.45)]
    assert found["workload_rows"] == [{"workload": "long-prompt"}] and found["prefix"]["ttft_floor_ms"] == 9.0
    hook("server", SimpleNamespace(bundle=tmp_path, goodput_per_s=None), res)   # no goodput: the floor rate
    assert calls[-1] == ("prefix", 0.1)
