"""The GPU encoder arms: the task's model on a CUDA device in the precisions and compile modes a serving team tries
first, each with the fact that gates it (``runtime.gpu``), under the same names as the CPU arms where they mean the
same thing.

- ``torch-fp32``: the baseline, eager fp32 on the GPU (TF32 off: torch's default for matmuls).
- ``torch-fp16`` / ``torch-bf16``: the model cast to half precision on the GPU (tensor cores; bf16 from Ampere on).
- ``torch-compile-fp16`` / ``torch-compile-bf16``: the same under inductor (Triton kernels fuse the elementwise ops
  around the GEMMs; no CUDA graphs, so a batch shape of its own does not pin memory per shape).

Int8 on GPU (TensorRT, ORT's CUDA provider) is not in this catalogue: neither is installed with the workbench.
The builds run on whatever device the context names, so the same code path runs on CPU in the tests (``device="cpu"``
stands in, the half-precision arms then say why they do not apply).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from workbench.arms.base import Arm, ArmContext, BuiltArm


@dataclass(frozen=True)
class OnDevice:
    """Build of a GPU arm: the baseline's model cast to ``precision`` on ``ctx.device`` (the cast is shared between
    the arms of one precision through ``ctx.cache``), then ``steps`` applied in order."""

    precision: str = "fp32"
    steps: tuple = ()

    def variant(self, ctx: ArmContext):
        from workbench.core import apply

        if self.precision == "fp32":
            variant = ctx.base
        else:
            key = ("cast", self.precision)
            if key not in ctx.cache:
                cast = ctx.task.baseline(ctx.device, self.precision, source=ctx.base.model)
                # the timing batch travels with it, as on the baseline: a compile step warms up (compiles) at build
                ctx.cache[key] = dataclasses.replace(cast, meta={**cast.meta, "example_inputs": ctx.inputs})
            variant = ctx.cache[key]
        for config in self.steps:
            variant = apply(variant, config)
        return variant

    def __call__(self, ctx: ArmContext) -> BuiltArm:
        from workbench.arms.cpu import built_variant

        return built_variant(self.variant(ctx), ctx)


def gpu_arms(gpu: dict | None = None) -> list[Arm]:
    """The GPU encoder arms for ``gpu`` (``runtime.gpu.gpu_summary()`` of this machine when None), each runnable
    here or with the reason it is not."""
    from workbench.runtime.gpu import gpu_summary, native_half
    from workbench.steps.compile import CompileConfig

    gpu = gpu_summary() if gpu is None else gpu
    no_gpu = None if gpu.get("available") else "no CUDA device is visible to torch here: run on a GPU machine"
    compile_why = "inductor: Triton kernels fuse the elementwise ops around the tensor-core GEMMs"
    arms = [Arm("torch-fp32", "baseline", OnDevice(), no_gpu, notes="baseline: eager fp32 on the GPU",
                baseline=True)]
    for precision in ("fp16", "bf16"):
        ok, why = native_half(gpu, precision)
        skip = None if ok else why
        arms += [Arm(f"torch-{precision}", precision, OnDevice(precision), skip, notes=why),
                 Arm(f"torch-compile-{precision}", "compile", OnDevice(precision, (CompileConfig(),)), skip,
                     notes=f"{why}; {compile_why}")]
    return arms


def gpu_context(task, batch_size: int, seq_len: int, eval_limit: int | None = None, out_dir: str | None = None,
                report_split: str | None = None, log=None, device: str = "cuda") -> ArmContext:
    """The context of the GPU arms of ``task``: the fp32 baseline on ``device``, a ``batch_size x seq_len`` batch of
    real data (host tensors: each call copies them over, as a server's request does), quality on validation."""
    from workbench.arms.cpu import context_for

    return context_for(task.baseline(device), task.example_inputs(batch_size=batch_size, seq_len=seq_len), task,
                       eval_limit=eval_limit, out_dir=out_dir, report_split=report_split, log=log, device=device)


__all__ = ["gpu_arms", "gpu_context", "OnDevice"]
