"""A random-weight Llama checkpoint of the decode benchmark's shape, for serving benchmarks and tests.

Engine speed does not depend on the weights' values, so the serving benchmark times a 134M Llama (12 x 768, vocab
32000; :func:`workbench.arms.llm.random_llama`) without a download. It is saved in bf16 safetensors with the demo
tokenizer (4096 tokens) so an engine and a load client can tokenise its prompts.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

DEMO_VOCAB = 4096   # the demo tokenizer's size


def random_llama_checkpoint(folder: Path, small: bool = False) -> Path:
    """``folder`` holding the random Llama in bf16 with the demo tokenizer (written once, atomically; an existing
    checkpoint is reused). ``small``: 2 x 128 with the tokenizer's vocabulary."""
    import torch

    from workbench.arms.llm import random_llama
    from workbench.serving.engine.checkpoint import TOKENIZER_FILES
    from workbench.tasks.causal_lm import DEMO_TARGET_DIR

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    model = random_llama(small, vocab=DEMO_VOCAB if small else None).to(torch.bfloat16)
    # ids above the tokenizer's decode to nothing (AIPerf counts a stream without text as a failed request): zero LM
    # head rows keep greedy decoding on ids the tokenizer has, at the same shape and speed
    with torch.no_grad():
        model.lm_head.weight[DEMO_VOCAB:] = 0
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for name in TOKENIZER_FILES:
        if (DEMO_TARGET_DIR / name).is_file() and name != "generation_config.json":
            shutil.copy(DEMO_TARGET_DIR / name, tmp / name)
    os.replace(tmp, folder)
    return folder


__all__ = ["random_llama_checkpoint", "DEMO_VOCAB"]
