"""bf16 on CPU: bf16 weights (``mode="weights"``) or fp32 weights under CPU autocast (``mode="autocast"``).

bf16 is fast on CPU only where the ISA has native bf16 dot products (AMX-BF16 on Sapphire Rapids and later,
AVX512-BF16 on Cooper Lake / Zen 4). Elsewhere oneDNN emulates it (bf16 -> fp32 around each GEMM): it still runs and
gives bf16 numerics, usually slower than fp32. The step works on any CPU and says so in ``meta["emulated"]`` with the
reason (from :func:`workbench.runtime.cpu.native_bf16`). The runner always returns fp32 logits.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.runtime.threads import torch_threads
from workbench.runtime.torch_runner import TorchRunner

MODES = ("weights", "autocast")


@dataclass(frozen=True)
class CpuPrecisionConfig:
    """CPU reduced precision.

    Args:
        precision: "bf16" (the only CPU half precision worth serving; fp16 GEMMs on CPU are slow everywhere).
        mode: "weights" casts the weights (and float inputs) to bf16: half the memory, bf16 all the way;
            "autocast" keeps fp32 weights and runs GEMMs in bf16 under ``torch.autocast("cpu")`` (norms and softmax
            stay fp32: closer to fp32, no memory saving).

    Example:
        >>> bf16 = apply(task.baseline(), CpuPrecisionConfig())     # doctest: +SKIP
        >>> bf16.meta["emulated"]                                  # True without AMX / AVX512-BF16
    """

    precision: str = "bf16"
    mode: str = "weights"

    def __post_init__(self):
        if self.precision != "bf16":
            raise ValueError(f"CPU precision {self.precision!r} unsupported: use 'bf16' (fp16 on CPU is slow; "
                             "for int8 use QuantizeDynamicConfig)")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} unknown: use one of {MODES}")

    @classmethod
    def autocast(cls) -> "CpuPrecisionConfig":
        return cls(mode="autocast")


class Bf16Runner(TorchRunner):
    """A :class:`TorchRunner` that feeds float inputs as bf16 (``weights``) or runs under CPU autocast, and returns
    fp32 logits."""

    def __init__(self, module: torch.nn.Module, mode: str, input_names: tuple[str, ...] | None = None,
                 threads: int | None = None):
        super().__init__(module, "cpu", input_names, threads)
        self.mode = mode

    def with_threads(self, threads: int) -> "Bf16Runner":
        return Bf16Runner(self.module, self.mode, self.input_names, threads)

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        feed = {k: torch.as_tensor(v) for k, v in inputs.items() if self.input_names is None or k in self.input_names}
        if self.mode == "weights":
            feed = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in feed.items()}
        with torch_threads(self.threads), torch.inference_mode(), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.mode == "autocast"):
            out = self.module(**feed)
        logits = out.logits if hasattr(out, "logits") else out
        return logits.float()


@register_step("cpu_precision", CpuPrecisionConfig)
def cpu_precision_step(variant: Variant, config: CpuPrecisionConfig) -> Variant:
    """bf16 of a torch CPU variant; ``meta["emulated"]`` says whether this CPU runs bf16 natively."""
    from workbench.runtime.cpu import isa_summary, native_bf16

    module = require_torch_module(variant, "cpu_precision", "apply it to the torch fp32 baseline, before exporting")
    if variant.device != "cpu":
        raise ValueError("cpu_precision is for CPU variants: on CUDA use task.baseline('cuda', 'bf16')")
    if variant.precision != "fp32":
        raise ValueError(f"cpu_precision needs an fp32 variant, got {variant.precision}: apply it to the fp32 baseline")
    model = copy.deepcopy(module).cpu().eval()
    if config.mode == "weights":
        model = model.to(torch.bfloat16)
    native, reason = native_bf16(isa_summary())
    runner = Bf16Runner(model, config.mode, getattr(variant.runner, "input_names", None),
                        getattr(variant.runner, "threads", None))
    meta = {"mode": config.mode, "emulated": not native, "bf16_reason": reason}
    if "example_inputs" in variant.meta:
        meta["example_inputs"] = variant.meta["example_inputs"]
    return dataclasses.replace(variant, name=f"torch-bf16-{config.mode}", precision="bf16", runner=runner,
                               model=model, meta=meta, id="")


__all__ = ["CpuPrecisionConfig", "cpu_precision_step", "Bf16Runner"]
