import dataclasses

import pytest
import torch

from workbench.core import Variant, apply
from workbench.runtime.torch_runner import TorchRunner
from workbench.steps.compile import CompileConfig
from workbench.steps.cpu_precision import CpuPrecisionConfig


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)))


def _variant(meta=None):
    model = Tiny().eval()
    return Variant(name="tiny-fp32", task="tiny", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", ("x",)), model=model, meta=meta or {})


def test_compiled_outputs_equal_eager_and_compile_time_is_apart():
    x = {"x": torch.randn(4, 16, generator=torch.Generator().manual_seed(1))}
    base = _variant({"example_inputs": x})
    compiled = apply(base, CompileConfig())
    assert compiled.meta["compile_seconds"] > 0 and compiled.precision == "fp32"
    torch.testing.assert_close(compiled(x), base(x), rtol=1e-5, atol=1e-5)
    assert compiled.model is base.model and compiled.runner.threads == base.runner.threads


def test_without_example_inputs_the_first_call_records_compile_time():
    base = _variant()
    compiled = apply(base, CompileConfig())
    assert compiled.meta["compile_seconds"] is None and "first call" in compiled.meta["compile_note"]
    x = {"x": torch.randn(4, 16)}
    torch.testing.assert_close(compiled(x), base(x), rtol=1e-5, atol=1e-5)
    assert compiled.runner.compile_seconds > 0


@pytest.mark.slow
def test_compile_keeps_the_bf16_runner():
    x = {"x": torch.randn(4, 16)}
    bf16 = apply(_variant({"example_inputs": x}), CpuPrecisionConfig())
    compiled = apply(bf16, CompileConfig())
    assert compiled.precision == "bf16" and compiled.meta["emulated"] == bf16.meta["emulated"]
    out = compiled(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, bf16(x), rtol=2e-2, atol=2e-2)


def test_rejects_bad_config_and_recompiling():
    with pytest.raises(ValueError, match="CUDA graphs"):
        CompileConfig(mode="reduce-overhead")
    base = _variant()
    onnxish = dataclasses.replace(base, backend="onnxruntime", model=None, id="x")
    with pytest.raises(ValueError, match="compile needs a torch variant"):
        apply(onnxish, CompileConfig())
    with pytest.raises(ValueError, match="already compiled"):
        apply(apply(base, CompileConfig()), CompileConfig())


def test_frozen_compile_matches_eager_and_every_call_runs_with_freezing_on():
    import torch._inductor.config as inductor_config

    x = {"x": torch.randn(4, 16, generator=torch.Generator().manual_seed(2))}
    base = _variant({"example_inputs": x})
    frozen = apply(base, CompileConfig.frozen())
    assert frozen.meta["freezing"] and frozen.meta["compile_seconds"] > 0 and frozen.id != apply(base, CompileConfig()).id
    torch.testing.assert_close(frozen(x), base(x), rtol=1e-5, atol=1e-5)
    assert frozen.runner.with_threads(1).freezing
    seen = []
    frozen.runner.inner = lambda inputs: seen.append(inductor_config.freezing)   # a recompile may come on any call
    frozen(x)
    assert seen == [True] and not inductor_config.freezing
