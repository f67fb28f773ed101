"""Decoder classifiers (Llama and kin): a pad token from EOS, and batches that give the logits of batch 1."""
import json

import pytest
import torch
from tiny_task_models import TEXTS, llama

from workbench.tasks import get_task


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama-cls")
    data = root / "eval.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": i % 3}) for i, t in enumerate(TEXTS)))
    return get_task("text-classification", model_dir=llama(root / "m"), data=data)


def test_pad_token_comes_from_eos_and_config_matches(task):
    base = task.baseline()
    assert task.tokenizer.pad_token == "</s>" and task.tokenizer.padding_side == "right"
    assert base.model.config.pad_token_id == task.tokenizer.eos_token_id


def test_batched_logits_equal_one_at_a_time(task):
    base = task.baseline()
    texts = ["Open the file.", "Compute the checksum of a block of bytes and return it.", "Sort it."]
    batch = task.tokenizer(texts, padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(1).tolist() != [batch["input_ids"].shape[1]] * 3  # really padded
    together = base(dict(batch))
    alone = torch.cat([base(dict(task.tokenizer([t], return_tensors="pt"))) for t in texts])
    assert together.shape == (3, 3)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_accuracy_is_the_same_at_every_batch_size(task):
    from workbench.tasks.text_classification import predict_labels

    base = task.baseline()
    texts = task.splits["test"][0]
    assert predict_labels(base, task.tokenizer, texts, batch_size=1) == predict_labels(base, task.tokenizer, texts, 16)
    assert task.evaluate(base).n_examples == len(texts)
