"""Task: what is optimised. Model loader, eval data, metric, timing inputs, calibration data."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

import torch

from workbench.core import Variant
from workbench.runtime.torch_runner import TORCH_DTYPES, TorchRunner, resolve_device


@dataclass(frozen=True)
class QualityResult:
    """A task metric on held-out data with a bootstrap 95% confidence interval."""

    metric: str            # "accuracy" (higher is better) or "perplexity" (lower is better)
    value: float
    ci_low: float
    ci_high: float
    n_examples: int
    higher_is_better: bool = True
    extra: dict | None = None  # secondary metrics (next-token accuracy, majority baseline, ...)
    per_example: tuple | None = field(default=None, repr=False, compare=False)  # scores, for paired comparisons

    def as_row(self) -> dict:
        row = {"metric": self.metric, "quality": self.value, "quality_ci_low": self.ci_low,
               "quality_ci_high": self.ci_high, "quality_n": self.n_examples,
               "higher_is_better": self.higher_is_better}
        row.update(self.extra or {})
        return row


class Task(ABC):
    """Base class of every task. Subclasses fill in the model, data and metric.

    Example:
        >>> task = get_task("text-classification")   # doctest: +SKIP
        >>> base = task.baseline()                   # torch eager fp32 on CPU
        >>> task.evaluate(base).value                 # held-out accuracy
    """

    name: str = "task"
    kind: str = "custom"          # "classification" | "causal-lm" | "text2text" | "custom"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    @abstractmethod
    def load_model(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        """A fresh torch module in ``dtype`` on ``device``, loaded there directly (not fp32 on CPU, then moved)."""

    @abstractmethod
    def evaluate(self, variant: Variant, split: str = "test", limit: int | None = None) -> QualityResult:
        """The task metric of ``variant`` on a held-out split."""

    @abstractmethod
    def example_inputs(self, batch_size: int = 1, seq_len: int = 128) -> dict[str, torch.Tensor]:
        """Realistic inputs of the given shape for timing (taken from the task's own data)."""

    # What measurement asks a task instead of comparing ``kind`` (only tasks/ knows the kinds).
    generates_text: bool = False  # True: the model decodes tokens, so sweeps time prompt + generated output too

    def tokens_in(self, inputs: dict[str, torch.Tensor]) -> int | None:
        """Tokens a batch of ``inputs`` carries, for tokens/s columns; None where throughput counts items only."""
        return None

    def generation_call(self, variant, inputs: dict[str, torch.Tensor], output_len: int):
        """A no-argument callable that greedily generates exactly ``output_len`` tokens for ``inputs`` with the
        variant's own decoding path, or None to let the sweep use the decoder-only path (``generate`` /
        ``runner.generate_greedy``). Encoder-decoder tasks answer this (they need decoder inputs)."""
        return None

    def calibration_batches(self, n_examples: int = 128, batch_size: int = 8,
                            seq_len: int = 128) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the calibration split (the validation split unless a task says otherwise)."""
        raise NotImplementedError(f"task {self.name!r} has no calibration data")

    def baseline(self, device: str = "cpu", precision: str = "fp32", source: torch.nn.Module | None = None) -> Variant:
        """Torch eager variant. fp16/bf16 only on CUDA (CPU half precision is slow and not a serving choice).

        The model is loaded straight in ``precision`` on ``device``; with ``source`` (a model already loaded) it is
        derived from that instead of read from disk again.
        """
        device = resolve_device(device)
        if precision not in TORCH_DTYPES:
            raise ValueError(f"baseline precision {precision!r}: use fp32, fp16 or bf16")
        if precision != "fp32" and device != "cuda":
            raise ValueError(f"{precision} baselines run on CUDA only; on CPU use fp32")
        dtype = TORCH_DTYPES[precision]
        model = (derive_model(source, device, dtype) if source is not None else self._load(dtype, device)).eval()
        return Variant(name=f"torch-{precision}" + ("-cuda" if device == "cuda" else ""), task=self.name,
                       backend="torch", device=device, precision=precision,
                       runner=self.torch_runner(model, device), model=model)

    def baselines(self, device: str = "auto") -> list[Variant]:
        """fp32 on CPU always; fp16 and bf16 too when CUDA is present. The checkpoint is read once: the CUDA
        variants are cast from the CPU model tensor by tensor, so no second full fp32 copy is ever made."""
        out = [self.baseline("cpu", "fp32")]
        if resolve_device(device) == "cuda":
            out += [self.baseline("cuda", p, source=out[0].model) for p in ("fp32", "fp16", "bf16")]
        return out

    def torch_runner(self, model: torch.nn.Module, device: str) -> TorchRunner:
        """The runner a torch baseline gets; a task whose model needs more than its inputs (a seq2seq decoder start)
        returns its own TorchRunner subclass."""
        return TorchRunner(model, device, self.input_names)

    def _load(self, dtype: torch.dtype, device: str) -> torch.nn.Module:
        """``load_model`` in dtype on device; a subclass whose ``load_model()`` takes no arguments still works."""
        import inspect

        if "dtype" in inspect.signature(self.load_model).parameters:
            return self.load_model(dtype=dtype, device=device)
        return self.load_model().to(device=device, dtype=dtype)


def derive_model(source: torch.nn.Module, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``source`` on ``device`` in ``dtype``, made tensor by tensor: deepcopy with a memo that maps each
    parameter and buffer to its converted copy, so the full-size source is never duplicated where it lives, and
    tied weights (one Parameter under two names) stay tied. Integer buffers keep their dtype, as ``Module.to``."""
    import copy

    memo: dict[int, object] = {}
    with torch.no_grad():
        for p in source.parameters():
            memo[id(p)] = torch.nn.Parameter(p.detach().to(device=device, dtype=dtype, copy=True),
                                           requires_grad=p.requires_grad)
        for b in source.buffers():
            memo[id(b)] = b.to(device=device, dtype=dtype if b.is_floating_point() else b.dtype, copy=True)
    return copy.deepcopy(source, memo)
