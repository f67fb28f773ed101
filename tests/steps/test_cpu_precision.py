import dataclasses

import pytest
import torch

from workbench.core import apply
from workbench.runtime.cpu import isa_summary, native_bf16
from workbench.steps.cpu_precision import CpuPrecisionConfig
from workbench.tasks import get_task


@pytest.fixture(scope="module")
def demo():
    task = get_task("text-classification")
    base = task.baseline()
    batch = task.example_inputs(batch_size=8, seq_len=64)
    return task, base, batch, base(batch)


@pytest.mark.parametrize("mode", ["weights", "autocast"])
def test_bf16_logits_close_to_fp32_and_top1_agrees(demo, mode):
    _task, base, batch, ref = demo
    bf16 = apply(base, CpuPrecisionConfig(mode=mode))
    out = bf16(batch)
    assert bf16.precision == "bf16" and bf16.backend == "torch" and out.dtype == torch.float32
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 0.1           # bf16 keeps ~3 significant digits (seen: ~0.02)
    agree = out.argmax(-1) == ref.argmax(-1)
    top2 = ref.topk(2, -1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.2                # fp32 margin past 2x the bound: bf16 cannot flip it
    assert clear.sum() >= 4 and agree[clear].all()
    assert agree.float().mean().item() >= 0.85             # the demo batch has one near-tie (margin 0.016)
    params = {p.dtype for p in bf16.model.parameters()}
    assert params == ({torch.bfloat16} if mode == "weights" else {torch.float32})
    assert {p.dtype for p in base.model.parameters()} == {torch.float32}   # parent untouched


def test_emulation_is_reported_from_the_isa(demo):
    _task, base, batch, _ref = demo
    bf16 = apply(base, CpuPrecisionConfig())
    native, reason = native_bf16(isa_summary())
    assert bf16.meta["emulated"] is (not native) and bf16.meta["bf16_reason"] == reason
    assert bf16.runner.with_threads(1)(batch).dtype == torch.float32


def test_rejects_bad_config_and_non_torch_variants(demo):
    with pytest.raises(ValueError, match="use 'bf16'"):
        CpuPrecisionConfig(precision="fp16")
    with pytest.raises(ValueError, match="mode"):
        CpuPrecisionConfig(mode="fast")
    _task, base, _batch, _ref = demo
    onnxish = dataclasses.replace(base, backend="onnxruntime", model=None, id="x")
    with pytest.raises(ValueError, match="cpu_precision needs a torch variant"):
        apply(onnxish, CpuPrecisionConfig())
