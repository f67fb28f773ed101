"""Users' own models and data: local HF directories, data files, any nn.Module; and the errors for bad input."""
import json
import re

import pytest
import torch

from workbench.tasks import from_module, get_task
from workbench.tasks.text_classification import DEMO_MODEL_DIR


def test_local_hf_directory_with_jsonl_data(tmp_path):
    data = tmp_path / "eval.jsonl"
    rows = [{"text": "Return the logger with the given name.", "label": "logging"},
            {"text": "Create an event loop and run the coroutine.", "label": "asyncio"}] * 10
    data.write_text("\n".join(json.dumps(r) for r in rows))
    task = get_task("text-classification", model_dir=DEMO_MODEL_DIR, data=data)
    base = task.baseline()
    result = task.evaluate(base)
    # The same accuracy, computed here straight from the model on the task's test split.
    texts, labels = task.splits["test"]
    with torch.inference_mode():
        logits = base.model(**task.tokenizer(texts, padding=True, return_tensors="pt")).logits
    expected = float((logits.argmax(-1) == torch.tensor(labels)).float().mean())
    assert result.n_examples == 10 and result.value == pytest.approx(expected)


def test_csv_data_with_integer_labels(tmp_path):
    data = tmp_path / "eval.csv"
    data.write_text("text,label\n" + "\n".join(f'"Parse the XML element number {i}.",7' for i in range(8)))
    task = get_task("text-classification", model_dir=DEMO_MODEL_DIR, data=data)
    assert task.evaluate(task.baseline()).n_examples == 4


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ('{"text": "a", "label": 1}\nnot json\n', "eval.jsonl:2 is not valid JSON"),
    ('{"text": "a"}\n', "has no 'label' field"),
    ('{"text": "a", "label": "no-such-package"}\n', "neither an integer nor a label"),
])
def test_bad_data_files_say_what_is_wrong(tmp_path, content, message):
    data = tmp_path / "eval.jsonl"
    data.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        get_task("text-classification", model_dir=DEMO_MODEL_DIR, data=data)


def test_bad_model_paths_say_what_is_wrong(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a", "label": 0}\n')
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_task("text-classification", model_dir=tmp_path / "nope", data=data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        get_task("text-classification", model_dir=tmp_path / "empty", data=data)
    with pytest.raises(FileNotFoundError, match="data file"):
        get_task("text-classification", model_dir=DEMO_MODEL_DIR, data=tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("image-segmentation")


def test_from_module_wraps_any_module():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    x = torch.randn(16, 4)
    y = (x.sum(1) > 0).long()

    def accuracy(variant):
        return float((variant({"input": x}).argmax(-1) == y).float().mean())

    class Wrapped(torch.nn.Module):  # the runner calls module(**inputs)
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, input):
            return self.net(input)

    task = from_module(Wrapped(), accuracy, {"input": x}, name="toy")
    base = task.baseline()
    assert base.model is not task.module  # never mutates the user's module
    assert task.example_inputs(batch_size=40)["input"].shape == (40, 4)
    assert task.evaluate(base).value == pytest.approx(accuracy(base))  # the user's eval_fn, passed through
    with pytest.raises(TypeError, match="nn.Module"):
        from_module(lambda x: x, accuracy, {"input": x})
