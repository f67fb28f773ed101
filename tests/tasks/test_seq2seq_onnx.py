"""T5 and BART through optimum to ONNX (encoder + decoder with past): greedy output identical to torch."""
import json

import pytest
import torch
from tiny_task_models import TEXTS, bart, t5

from workbench.tasks import get_task
from workbench.tasks.seq2seq_onnx import export_seq2seq, greedy_agreement
from workbench.measure.generation import measure_text2text_generation
from workbench.tasks.text2text import generate_ids


@pytest.mark.parametrize("build", [t5, bart], ids=["t5", "bart"])
def test_export_generates_what_torch_generates(tmp_path, build):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"source": s, "target": s}) for s in TEXTS[:8]))
    task = get_task("text2text", build(tmp_path / "m"), data=data)
    task.max_new_tokens = 8  # random weights never stop early: keep generations short on 2 shared cores
    base = task.baseline()
    batches = [task.encode(TEXTS[:3]), task.encode(TEXTS[3:5])]      # padded batches of 3 and 2
    onnx = export_seq2seq(base, batches, max_new_tokens=8, out_dir=tmp_path / "onnx", threads=1)
    assert onnx.backend == "onnxruntime" and onnx.parent_id == base.id and onnx.runner.threads == 1
    assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} <= set(onnx.meta["onnx_files"])
    check = onnx.meta["export"]
    assert check["greedy_identical"] and check["sequences_checked"] == 5 and check["first_step_max_abs_diff"] < 1e-5 * check["first_step_max_abs_logit"]
    # Unseen sources too, and the same quality on the same examples.
    batch = task.encode(TEXTS[5:8])
    want, got = generate_ids(base, batch, 8), generate_ids(onnx, batch, 8)
    assert want.shape[1] > 2 and greedy_agreement(want, got) == 1.0
    assert task.evaluate(onnx).per_example == task.evaluate(base).per_example
    row = measure_text2text_generation(task, onnx, n_sources=1, new_tokens=4, repeats=1)
    assert row["backend"] == "onnxruntime" and row["ms_per_output_token"] > 0
    # What a batching sweep calls: the first step from input_ids alone, and exactly n new tokens.
    ids = task.example_inputs(2, 10)["input_ids"]
    torch.testing.assert_close(onnx({"input_ids": ids}), base({"input_ids": ids}), atol=1e-3, rtol=1e-3)
    assert onnx.runner.generate_greedy(ids, max_new_tokens=5).shape == (2, 6)


def test_greedy_agreement_counts_whole_sequences():
    a = torch.tensor([[0, 5, 6], [0, 7, 8]])
    assert greedy_agreement(a, torch.tensor([[0, 5, 6], [0, 7, 9]])) == 0.5


def test_export_refuses_a_decoder_only_model(tmp_path):
    from tiny_task_models import llama

    from workbench.core import Variant
    from workbench.runtime.torch_runner import TorchRunner
    from workbench.tasks.hf_loading import load_hf_model

    model = load_hf_model(llama(tmp_path / "l", head="lm"), "AutoModelForCausalLM")
    v = Variant(name="torch-fp32", task="t", backend="torch", device="cpu", precision="fp32",
                runner=TorchRunner(model), model=model)
    with pytest.raises(ValueError, match="needs an encoder-decoder"):
        export_seq2seq(v, [], out_dir=tmp_path / "o")
