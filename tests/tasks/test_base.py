"""Precision variants derive from one loaded model: cast tensor by tensor, tied weights kept tied."""
import pytest
import torch
from tiny_task_models import llama

from workbench.tasks.base import derive_model
from workbench.tasks.hf_loading import load_hf_model


def test_derive_casts_every_tensor_and_leaves_the_source(tmp_path):
    src = load_hf_model(llama(tmp_path / "m", head="lm"), "AutoModelForCausalLM")
    src.config.tie_word_embeddings = True
    src.tie_weights()
    before = {k: v.clone() for k, v in src.state_dict().items()}
    out = derive_model(src, "cpu", torch.bfloat16)
    assert {p.dtype for p in out.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in src.parameters()} == {torch.float32}
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())
    assert out.lm_head.weight is out.model.embed_tokens.weight          # still tied: one tensor, not two
    assert out.lm_head.weight.data_ptr() != src.lm_head.weight.data_ptr()
    ids = torch.randint(0, 100, (1, 9))
    with torch.inference_mode():
        torch.testing.assert_close(out(ids).logits.float(), src(ids).logits, atol=0.1, rtol=0.05)


def test_module_task_baseline_does_not_touch_the_users_module():
    from workbench.tasks import from_module

    net = torch.nn.Linear(4, 2)
    task = from_module(net, lambda v: 1.0, {"input": torch.randn(2, 4)})
    base = task.baseline()
    assert base.model is not net and base.model.weight is not net.weight
    torch.testing.assert_close(base.model.weight, net.weight)


def test_a_load_model_without_dtype_arguments_still_works():
    from workbench.tasks.module_task import ModuleTask

    class Legacy(ModuleTask):  # a user's subclass written before load_model took dtype/device
        def load_model(self):
            return torch.nn.Linear(4, 2)

    base = Legacy(torch.nn.Linear(4, 2), lambda v: 1.0, {"input": torch.randn(2, 4)}).baseline()
    assert base.model.weight.dtype == torch.float32 and base.device == "cpu"


def test_pickled_only_directory_names_the_opt_in_from_get_task(tmp_path):
    from tiny_task_models import llama

    from workbench.tasks import get_task

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "Open the file."}\n' * 4)
    model_dir = llama(tmp_path / "bin", head="lm", safe=False)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        get_task("causal-lm", model_dir, data=data)
    task = get_task("causal-lm", model_dir, data=data, allow_pickle=True)
    assert task.baseline().model.config.model_type == "llama"


@pytest.mark.gpu
def test_cuda_baselines_load_once_and_derive_each_precision(tmp_path):
    from tiny_task_models import TEXTS, llama

    from workbench.tasks.causal_lm import CausalLMTask

    task = CausalLMTask(llama(tmp_path / "m", head="lm"), {"test": TEXTS}, block_len=16)
    calls = []
    real = task.load_model
    task.load_model = lambda dtype=torch.float32, device="cpu": calls.append((dtype, device)) or real(dtype, device)
    variants = task.baselines("cuda")
    assert calls == [(torch.float32, "cpu")]                          # read from disk once
    assert [(v.device, v.precision) for v in variants] == [("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "fp16"),
                                                          ("cuda", "bf16")]
    assert {p.dtype for p in variants[3].model.parameters()} == {torch.bfloat16}
    ids = task.example_inputs(2, 16)
    torch.testing.assert_close(variants[1](ids), variants[0](ids), atol=1e-4, rtol=1e-4)
    direct = task.baseline("cuda", "bf16")                           # loaded straight in bf16 on the GPU
    assert {(p.device.type, p.dtype) for p in direct.model.parameters()} == {("cuda", torch.bfloat16)}
