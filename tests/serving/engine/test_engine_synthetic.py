"""The random Llama checkpoint the serving benchmark serves: written once, bf16, with the demo tokenizer, its
text-less ids never the greedy pick."""
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


def test_text_less_ids_have_zero_lm_head_rows_and_another_recipe_is_rewritten(tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from workbench.serving.engine.synthetic import DEMO_VOCAB, random_llama_checkpoint, silent_ids

    folder = random_llama_checkpoint(tmp_path / "llama", small=True)
    tok = AutoTokenizer.from_pretrained(folder)
    quiet = silent_ids(folder, DEMO_VOCAB)
    assert 0 in quiet and all(tok.decode([i], skip_special_tokens=True).replace("\ufffd", "") == "" for i in quiet)
    assert len(quiet) < DEMO_VOCAB // 10 and silent_ids(folder, DEMO_VOCAB + 5)[-5:] == list(range(4096, 4101))
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        head = f.get_tensor("lm_head.weight" if "lm_head.weight" in f.keys() else "model.embed_tokens.weight")
    norms = head.float().norm(dim=1)
    talkative = torch.ones(DEMO_VOCAB, dtype=torch.bool)
    talkative[quiet] = False
    assert (norms[quiet] == 0).all() and (norms[talkative] > 0).all()
    (folder / "synthetic.json").write_text('{"recipe": 1}')   # a checkpoint of an earlier recipe
    (folder / "left-over").write_text("x")
    assert random_llama_checkpoint(folder, small=True) == folder and not (folder / "left-over").exists()
