"""torch.compile (inductor) of a torch variant, with the compile time reported apart from the timed calls.

The new variant's runner is the parent's runner (same input handling, e.g. bf16 casting) around
``torch.compile(module)``. Compilation happens on the first call: when the parent's ``meta["example_inputs"]`` holds
a batch, the step makes that call at apply time and reports its seconds in ``meta["compile_seconds"]``; otherwise the
first call pays it and the runner records it in ``runner.compile_seconds``. A new input shape can recompile
(``dynamic=True`` compiles shape-generic kernels once).
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module

MODES = ("default", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class CompileConfig:
    """torch.compile settings.

    Args:
        mode: "default" or "max-autotune-no-cudagraphs" (longer compile, tries more GEMM choices).
        dynamic: None lets torch decide (recompiles with dynamic shapes once a shape changes), True compiles
            shape-generic kernels, False specialises on every shape.
        freezing: inductor's ``freezing``: the weights become constants of the graph, folded and pre-packed into
            oneDNN's blocked layout at compile time (on CPU the GEMMs then skip the per-call weight reorder; with
            bf16 weights on AVX512-BF16 / AMX that is most of the win). Inference only: weights must not change.

    Example:
        >>> compiled = apply(task.baseline(), CompileConfig())     # doctest: +SKIP
        >>> compiled.meta["compile_seconds"]
    """

    mode: str = "default"
    dynamic: bool | None = None
    freezing: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"compile mode {self.mode!r} unsupported here: use one of {MODES} "
                             "('reduce-overhead' / 'max-autotune' use CUDA graphs)")
        if self.dynamic not in (None, True, False):
            raise ValueError(f"dynamic must be None, True or False, got {self.dynamic!r}")

    @classmethod
    def max_autotune(cls) -> "CompileConfig":
        return cls(mode="max-autotune-no-cudagraphs")

    @classmethod
    def frozen(cls) -> "CompileConfig":
        """Weights frozen into the graph and pre-packed (inductor ``freezing``): the CPU inference recipe."""
        return cls(freezing=True)


class CompiledRunner:
    """The parent's runner running a compiled module; records the first call's seconds (the compilation)."""

    def __init__(self, inner, compile_seconds: float | None = None, freezing: bool = False):
        self.inner = inner
        self.compile_seconds = compile_seconds
        self.freezing = freezing

    @property
    def threads(self):
        return getattr(self.inner, "threads", None)

    @property
    def input_names(self):
        return getattr(self.inner, "input_names", None)

    def with_threads(self, threads: int) -> "CompiledRunner":
        return CompiledRunner(self.inner.with_threads(threads), self.compile_seconds, self.freezing)

    def __call__(self, inputs: dict[str, Any]):
        if self.freezing:   # inductor reads the flag when it (re)compiles, which may happen on any call
            import torch._inductor.config as inductor_config

            with inductor_config.patch(freezing=True):
                return self._call(inputs)
        return self._call(inputs)

    def _call(self, inputs: dict[str, Any]):
        if self.compile_seconds is None:
            start = time.perf_counter()
            out = self.inner(inputs)
            self.compile_seconds = time.perf_counter() - start
            return out
        return self.inner(inputs)


@register_step("compile", CompileConfig)
def compile_step(variant: Variant, config: CompileConfig) -> Variant:
    """A torch variant whose runner calls ``torch.compile(module)``; ``meta["compile_seconds"]`` when it could warm up."""
    import torch

    module = require_torch_module(variant, "compile", "apply it to a torch variant (before exporting)")
    inner = variant.runner
    if isinstance(inner, CompiledRunner):
        raise ValueError(f"{variant.name!r} is already compiled: apply CompileConfig to its parent instead")
    if not hasattr(inner, "module") or not hasattr(inner, "with_threads"):
        raise ValueError(f"compile needs a TorchRunner-like runner (with .module), got {type(inner).__name__}: "
                         "build the variant with workbench.runtime.torch_runner.TorchRunner")
    inner = copy.copy(inner)
    inner.module = torch.compile(module, mode=config.mode, dynamic=config.dynamic)
    runner = CompiledRunner(inner, freezing=config.freezing)
    meta = {"compile_mode": config.mode, "dynamic": config.dynamic, "freezing": config.freezing,
            "compile_seconds": None}
    for key in ("emulated", "bf16_reason", "mode", "example_inputs"):
        if key in variant.meta:
            meta[key] = variant.meta[key]
    example = variant.meta.get("example_inputs")
    if example is not None:
        runner(example)
        meta["compile_seconds"] = runner.compile_seconds   # unrounded: a warm compile cache can make it sub-ms, never 0
    else:
        meta["compile_note"] = "no meta['example_inputs']: the first call compiles (runner.compile_seconds)"
    return dataclasses.replace(variant, name=f"{variant.name}-compiled", runner=runner, meta=meta, id="")


__all__ = ["CompileConfig", "compile_step", "CompiledRunner"]
