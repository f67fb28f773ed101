"""The random Llama checkpoint the serving benchmark serves: written once, bf16, with the demo tokenizer."""
from __future__ import annotations

import json


def test_small_random_llama_checkpoint_is_bf16_with_the_demo_tokenizer_and_reused(tmp_path):
    import torch
    from safetensors import safe_open

    from workbench.serving.engine.synthetic import DEMO_VOCAB, random_llama_checkpoint

    folder = random_llama_checkpoint(tmp_path / "llama", small=True)
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == DEMO_VOCAB and config["num_hidden_layers"] == 2
    assert (folder / "tokenizer.json").is_file() and not (tmp_path / "llama.tmp").exists()
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert random_llama_checkpoint(folder, small=True) == folder               # an existing one is not rewritten
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
