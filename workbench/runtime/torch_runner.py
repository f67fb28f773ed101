"""Runners: the callables inside a Variant that turn a batch of named inputs into logits."""
from __future__ import annotations

from typing import Any

import torch

from workbench.runtime.threads import check_threads, default_threads, torch_threads

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'. 'cuda' without a GPU is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no GPU: use --device cpu (or auto)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} unknown: use cpu, cuda or auto")
    return device


def synchronize(device: str) -> None:
    """Wait for queued GPU work so a timer around a call measures the call."""
    if device == "cuda":
        torch.cuda.synchronize()


class TorchRunner:
    """Runs an ``nn.Module`` whose output has ``.logits`` (HF) or is a tensor, under inference mode.

    Args:
        module: the model (put in eval mode).
        device: "cpu" or "cuda".
        input_names: the inputs ``forward`` takes (others in the dict are dropped); None passes them all.
        threads: torch intra-op threads this runner's calls run at, fixed here (default
            :func:`~workbench.runtime.threads.default_threads`: torch's count now). Each call sets torch's count to it
            and restores the previous one after, so the count a row records is the one that ran.
    """

    def __init__(self, module: torch.nn.Module, device: str = "cpu", input_names: tuple[str, ...] | None = None,
                 threads: int | None = None):
        self.module = module.eval()
        self.device = device
        self.input_names = input_names
        self.threads = check_threads(threads) or default_threads()

    def with_threads(self, threads: int) -> "TorchRunner":
        """The same module run at another intra-op count (a new runner; this one is unchanged)."""
        return TorchRunner(self.module, self.device, self.input_names, threads)

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        feed = {k: torch.as_tensor(v).to(self.device) for k, v in inputs.items()
                if self.input_names is None or k in self.input_names}
        with torch_threads(self.threads), torch.inference_mode():
            out = self.module(**feed)
        logits = out.logits if hasattr(out, "logits") else out
        return logits.float().cpu() if self.device != "cpu" or logits.dtype != torch.float32 else logits
