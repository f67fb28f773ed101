"""Task.from_module: any ``nn.Module`` with the user's eval function and example inputs."""
from __future__ import annotations

from typing import Callable

import torch

from workbench.core import Variant
from workbench.tasks.base import QualityResult, Task


class ModuleTask(Task):
    """Wraps a user's module.

    Args:
        module: the fp32 model; it is deep-copied for each baseline, never mutated.
        eval_fn: ``eval_fn(variant) -> float`` (higher is better unless ``higher_is_better=False``),
            or ``-> QualityResult`` for a metric with its own confidence interval.
        inputs: one example batch ``{name: tensor}``; its first dimension is the batch.
    """

    kind = "custom"

    def __init__(self, module: torch.nn.Module, eval_fn: Callable, inputs: dict[str, torch.Tensor],
                 name: str = "module", metric: str = "score", higher_is_better: bool = True):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"from_module needs a torch.nn.Module, got {type(module).__name__}")
        if not inputs:
            raise ValueError("from_module needs example inputs: a dict of named tensors")
        self.module, self.eval_fn, self.inputs = module, eval_fn, dict(inputs)
        self.name, self.metric, self.higher_is_better = name, metric, higher_is_better
        self.input_names = tuple(self.inputs)

    def load_model(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        from workbench.tasks.base import derive_model

        return derive_model(self.module, device, dtype).eval()  # the user's module itself is never touched

    def evaluate(self, variant: Variant, split: str = "test", limit: int | None = None) -> QualityResult:
        result = self.eval_fn(variant)
        if isinstance(result, QualityResult):
            return result
        value = float(result)
        # A single score has no spread to resample: the interval is the point itself, and says so.
        return QualityResult(self.metric, value, value, value, 1, self.higher_is_better, {"ci": "none (single score)"})

    def example_inputs(self, batch_size: int = 1, seq_len: int | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in self.inputs.items():
            reps = -(-batch_size // v.shape[0])
            t = v.repeat(reps, *([1] * (v.dim() - 1)))[:batch_size]
            out[k] = t[:, :seq_len] if seq_len and t.dim() > 1 else t
        return out

    def calibration_batches(self, n_examples: int = 128, batch_size: int = 8, seq_len: int | None = None):
        yield self.example_inputs(batch_size, seq_len)
