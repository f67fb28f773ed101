"""Served quality: the agreement arithmetic, and (integration) the tiny Llama served by vLLM against the workbench's
own greedy decode and NLL of the same checkpoint."""
from __future__ import annotations

import pytest

from workbench.serving.engine.quality import agreement


def test_agreement_counts_up_to_the_first_divergence():
    out = agreement([[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 2, 3, 4], [5, 9, 7, 8]])
    # the second sequence diverges at position 1: its later matches come from different contexts, not counted
    assert out["greedy_token_agreement"] == 5 / 8 and out["greedy_first_divergence"] == [None, 1]
    assert out["greedy_exact_sequences"] == 1 and out["greedy_first_divergence_min"] == 1
    assert agreement([[1, 2]], [[1, 2]])["greedy_first_divergence_min"] is None
    with pytest.raises(ValueError, match="same prompts"):
        agreement([[1]], [])


@pytest.mark.integration
def test_tiny_llama_served_greedy_and_perplexity_match_the_workbench(tiny_llama_task, tmp_path):
    import torch

    from workbench.serving.engine import envs
    from workbench.serving.engine.engine_args import EngineArgs
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.quality import served_quality
    from workbench.serving.engine.server import VllmServer

    ok, why = envs.available()
    if not ok:
        pytest.skip(why)
    ckpt = export_engine(tiny_llama_task.baseline(), tiny_llama_task, to=tmp_path / "b") / "checkpoint"
    torch.manual_seed(1)
    blocks = torch.randint(4, 4096, (4, 48))
    with VllmServer(ckpt, EngineArgs(max_model_len=128), tmp_path / "vllm.log") as server:
        q = served_quality(server.url, ckpt, blocks, n_prompts=4, prompt_len=16, new_tokens=16)
    assert q["greedy_sequences"] == 4 and len(q["greedy_first_divergence"]) == 4
    assert len(q["greedy_divergence_logprob_gaps"]) == 4 - q["greedy_exact_sequences"]
    assert all(g >= -1e-3 for g in q["greedy_divergence_logprob_gaps"])   # the own pick is its own argmax
    # bf16 engine kernels vs the workbench's fp32 on the same bf16 weights: near-ties may flip late tokens, not most
    assert q["greedy_token_agreement"] >= 0.5, q
    assert abs(q["served_ppl_diff_pct"]) < 2.0, q


def test_served_quality_of_the_baseline_serves_its_exported_checkpoint_and_stops(tiny_llama_task, tmp_path,
                                                                                 monkeypatch):
    from workbench.serving.engine import quality, server

    seen = {}

    class FakeServer:   # what the engine would be given; the checks themselves are the integration test's
        def __init__(self, checkpoint, args, log_path, cpus=None):
            seen.update(checkpoint=checkpoint, max_model_len=args.max_model_len, cpus=cpus, log=log_path)
            self.url = "http://127.0.0.1:1"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            seen["stopped"] = True

    monkeypatch.setattr(server, "VllmServer", FakeServer)
    monkeypatch.setattr(quality, "served_quality", lambda url, ckpt, blocks, n_prompts, new_tokens: {
        "url": url, "blocks": tuple(blocks.shape), "n_prompts": n_prompts, "new_tokens": new_tokens})
    out = quality.served_quality_of_baseline(tiny_llama_task, tmp_path, n_blocks=2, n_prompts=1, new_tokens=4)
    blocks = tiny_llama_task.token_blocks("test")[:2]
    assert out == {"url": "http://127.0.0.1:1", "blocks": tuple(blocks.shape), "n_prompts": 1, "new_tokens": 4}
    assert seen["checkpoint"] == tmp_path / "bundle-bf16" / "checkpoint" and (seen["checkpoint"] / "config.json").is_file()
    assert seen["max_model_len"] >= blocks.shape[1] + 8 and seen["stopped"]
