"""A random-weight Llama checkpoint of the decode benchmark's shape, for serving benchmarks and tests.

Engine speed does not depend on the weights' values, so the serving benchmark times a 134M Llama (12 x 768, vocab
32000; :func:`workbench.arms.llm.random_llama`) without a download. It is saved in bf16 safetensors with the demo
tokenizer (4096 tokens) so an engine and a load client can tokenise its prompts.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

DEMO_VOCAB = 4096   # the demo tokenizer's size
# What the checkpoint's recipe is; a folder written by another recipe is written again, not reused.
RECIPE = {"recipe": 2, "silent_lm_head_rows": "zero"}


def random_llama_checkpoint(folder: Path, small: bool = False) -> Path:
    """``folder`` holding the random Llama in bf16 with the demo tokenizer (written once, atomically; an existing
    checkpoint is reused). ``small``: 2 x 128 with the tokenizer's vocabulary."""
    import torch

    from workbench.arms.llm import random_llama
    from workbench.serving.engine.checkpoint import TOKENIZER_FILES
    from workbench.tasks.causal_lm import DEMO_TARGET_DIR

    folder = Path(folder)
    stamp = folder / "synthetic.json"
    if (folder / "config.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == RECIPE:
        return folder
    model = random_llama(small, vocab=DEMO_VOCAB if small else None).to(torch.bfloat16)
    # AIPerf counts a stream without text as a failed request. Ids above the tokenizer's decode to nothing, and so do
    # its special token and its partial UTF-8 byte pieces (vLLM holds those back until a character is whole): greedy
    # decoding of random weights can stay on them for a whole answer (one request in 100 of a confirmation point
    # streamed 32 tokens and no text). Zero LM-head rows give them a logit of 0, below the largest of the other ~4000
    # random logits on every step, at the same shape and speed.
    with torch.no_grad():
        model.lm_head.weight[silent_ids(DEMO_TARGET_DIR, model.lm_head.weight.shape[0])] = 0
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    (tmp / stamp.name).write_text(json.dumps(RECIPE))
    for name in TOKENIZER_FILES:
        if (DEMO_TARGET_DIR / name).is_file() and name != "generation_config.json":
            shutil.copy(DEMO_TARGET_DIR / name, tmp / name)
    shutil.rmtree(folder, ignore_errors=True)   # another recipe's checkpoint
    os.replace(tmp, folder)
    return folder


def silent_ids(tokenizer_dir: Path, vocab: int) -> list[int]:
    """The ids below ``vocab`` whose own text is empty: the tokenizer's special tokens, the pieces that decode only
    to U+FFFD (part of a UTF-8 character) and every id above the tokenizer's size."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    size = min(len(tok), vocab)
    quiet = [i for i in range(size) if not tok.decode([i], skip_special_tokens=True).replace("\ufffd", "")]
    return quiet + list(range(size, vocab))


__all__ = ["random_llama_checkpoint", "silent_ids", "DEMO_VOCAB", "RECIPE"]
