"""A tiny Llama (random weights, the demo tokenizer) as a local HF directory and its causal-LM task."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_llama_task(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.serving.engine.checkpoint import TOKENIZER_FILES
    from workbench.tasks.causal_lm import DEMO_TARGET_DIR, CausalLMTask

    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    # sizes multiples of 32 (vLLM's CPU int4 kernel), vocabulary = the demo tokenizer's 4096
    LlamaForCausalLM(LlamaConfig(vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=512)).eval().save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (DEMO_TARGET_DIR / name).is_file() and name != "generation_config.json":
            shutil.copy(DEMO_TARGET_DIR / name, folder / name)
    return CausalLMTask(folder, {"test": ["def f(x):\n    return x + 1\n" * 40]}, name="tiny-llama")
