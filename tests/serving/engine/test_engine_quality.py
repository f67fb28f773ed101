"""Served quality: the agreement arithmetic, the workbench's own model of an int4 checkpoint, and the baseline's
check wiring (the check on a real engine: test_engine_e2e.py)."""
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


def test_own_model_reads_an_int4_checkpoint_as_its_dequantised_weights(tiny_llama_task, tmp_path):
    """The workbench side of served quality on a quantised bundle: fp32 compute on exactly the int4 weights the engine
    reads (the served comparison itself runs on vLLM in test_engine_e2e.py, sharing its engine start)."""
    import torch

    from workbench.core import apply
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.quality import own_model
    from workbench.steps.weight_only import WeightOnlyConfig

    variant = apply(tiny_llama_task.baseline(), WeightOnlyConfig(bits=4, group_size=32))
    model = own_model(export_engine(variant, tiny_llama_task, to=tmp_path / "b") / "checkpoint")
    weight = model.model.layers[0].mlp.up_proj.weight
    assert weight.dtype == torch.float32 and weight.shape == (256, 128)
    # symmetric int4: every group of 32 is q x scale with q in [-8, 7], at most 16 distinct values
    assert max(len(torch.unique(g)) for g in weight.detach().reshape(-1, 32)) <= 16
    ids = torch.randint(4, 4096, (1, 8))
    assert model(input_ids=ids).logits.shape == (1, 8, 4096)


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
