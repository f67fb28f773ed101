"""PT2E int8 with torchao's x86 inductor quantizer, then ``torch.compile``: static (activation ranges from the
task's calibration split) or dynamic (activation scales computed per call).

The recipe (torchao 0.18, ``torchao.quantization.pt2e``): ``torch.export`` the model with dynamic batch and
sequence dims -> ``prepare_pt2e`` with ``X86InductorQuantizer`` (int8 per-channel weights, uint8 activations) ->
calibration calls (static) -> ``convert_pt2e`` -> ``torch.compile`` with inductor's ``freezing`` on, which lets
torchao's registered patterns fold the weights into oneDNN int8 ``qlinear`` kernels (VNNI / AMX where the CPU has them).

Inductor bakes the OpenMP thread count and the shapes into its kernels, so a runner compiles once per input shape at
its own thread count. To bound the compilations, the runner pads a batch to a shape bucket (batch 1, or multiples of
8; sequence length to a multiple of 64) with masked positions, which leaves an encoder's logits unchanged, and cuts
the padding off the output. The first call per bucket (the compilation) is timed apart (``runner.compile_seconds``).
A quality pass (``runtime.compiled_shapes.reuse_compiled_shapes``) runs its batches in a compiled shape instead, rows in
chunks, when one holds the sequence length: an evaluation's many batch shapes would otherwise each compile.

Example:
    >>> calib = save_calibration_set(task.calibration_batches(128, batch_size=8))    # doctest: +SKIP
    >>> int8 = apply(task.baseline(), Pt2eConfig.static(calib))                      # doctest: +SKIP
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.runtime.threads import check_threads, default_threads, torch_threads

MODES = ("static", "dynamic")
SEQ_BUCKET, BATCH_BUCKET = 64, 8


@dataclass(frozen=True)
class Pt2eConfig:
    """PT2E int8 settings.

    Args:
        mode: "static" (calibrated activation ranges; needs ``calibration``) or "dynamic" (per-call scales).
        calibration: .npz from :func:`workbench.steps.openvino.save_calibration_set` (static only).
        reduce_range: 7-bit activations, for CPUs without VNNI (u8 x s8 overflow in ``vpmaddubsw``).
    """

    mode: str = "dynamic"
    calibration: str | None = None
    reduce_range: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"PT2E mode {self.mode!r} unknown: use one of {MODES}")
        if self.mode == "static" and self.calibration is None:
            raise ValueError("PT2E static int8 needs calibration=<.npz>: save one with "
                             "workbench.steps.openvino.save_calibration_set(task.calibration_batches(128, 8))")
        if self.mode == "dynamic" and self.calibration is not None:
            raise ValueError("calibration is for mode='static' only: dynamic int8 computes activation scales per call")

    @classmethod
    def dynamic(cls) -> "Pt2eConfig":
        return cls()

    @classmethod
    def static(cls, calibration) -> "Pt2eConfig":
        return cls(mode="static", calibration=str(calibration))


def _bucket(n: int, step: int) -> int:
    return n if n == 1 else -(-n // step) * step


class Pt2eRunner:
    """Runs a converted PT2E module compiled by inductor at ``threads``; inputs are padded to shape buckets."""

    def __init__(self, converted: torch.nn.Module, input_names: tuple[str, ...] | None, threads: int | None = None):
        self.converted, self.input_names = converted, input_names
        self.threads = check_threads(threads) or default_threads()
        self.compiled = None
        self.compile_seconds: dict[str, float] = {}   # bucket "BxS" -> seconds of its first (compiling) call

    def with_threads(self, threads: int) -> "Pt2eRunner":
        """A runner at another thread count: it compiles again (inductor fixes the count in its kernels)."""
        return Pt2eRunner(self.converted, self.input_names, threads)

    def _pad(self, feed: dict[str, torch.Tensor], to_b: int | None = None, to_s: int | None = None
             ) -> tuple[dict, int, int]:
        """``feed`` padded to its shape bucket, or to ``to_b`` x ``to_s``; the real batch and sequence length."""
        ids = next(iter(feed.values()))
        batch, seq = ids.shape[0], ids.shape[1] if ids.dim() > 1 else 0
        if not self._paddable(feed):
            return feed, batch, seq  # no mask to hide padding: run the exact shape
        to_b, to_s = to_b or _bucket(batch, BATCH_BUCKET), to_s or _bucket(seq, SEQ_BUCKET)
        padded = {k: torch.nn.functional.pad(v, (0, to_s - seq, 0, to_b - batch)) for k, v in feed.items()}
        return padded, batch, seq

    @staticmethod
    def _paddable(feed: dict[str, torch.Tensor]) -> bool:
        return "attention_mask" in feed and next(iter(feed.values())).dim() == 2

    def _compiled_fit(self, feed: dict[str, torch.Tensor]) -> tuple[int, int] | None:
        """(rows, seq) of an already-compiled shape to run ``feed`` in, in chunks of rows, when its own bucket is not
        compiled yet and a compiled one holds its sequence length (the most rows first: the fewest chunks)."""
        if not self._paddable(feed):
            return None
        ids = next(iter(feed.values()))
        own = (_bucket(ids.shape[0], BATCH_BUCKET), _bucket(ids.shape[1], SEQ_BUCKET))
        compiled = [shape for shape in (tuple(int(d) for d in key.split("x")) for key in self.compile_seconds)
                    if len(shape) == 2]
        if own in compiled:
            return None
        fits = [(b, s) for b, s in compiled if s >= ids.shape[1]]
        return max(fits, key=lambda shape: (shape[0], -shape[1])) if fits else None

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        from workbench.runtime.compiled_shapes import reusing_compiled_shapes

        feed = {k: torch.as_tensor(v) for k, v in inputs.items() if self.input_names is None or k in self.input_names}
        fit = self._compiled_fit(feed) if reusing_compiled_shapes() else None
        if fit is None:
            return self._run(feed)
        rows, seq = fit
        batch = next(iter(feed.values())).shape[0]
        return torch.cat([self._run({k: v[i:i + rows] for k, v in feed.items()}, rows, seq)
                          for i in range(0, batch, rows)])

    def _run(self, feed: dict[str, torch.Tensor], to_b: int | None = None, to_s: int | None = None) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        feed, batch, seq = self._pad(feed, to_b, to_s)
        key = "x".join(str(d) for d in next(iter(feed.values())).shape)
        # freezing: constant weights let torchao's patterns pre-pack them into oneDNN int8 kernels at compile time
        with torch_threads(self.threads), torch.inference_mode(), inductor_config.patch(freezing=True):
            if self.compiled is None:
                self.compiled = torch.compile(self.converted, dynamic=False)
            start = time.perf_counter()
            out = self.compiled(**feed)
            if key not in self.compile_seconds:
                self.compile_seconds[key] = round(time.perf_counter() - start, 3)
        logits = (out.logits if hasattr(out, "logits") else out)[:batch]
        if logits.dim() >= 3 and seq and logits.shape[1] != seq:
            logits = logits[:, :seq]
        return logits.float()


def _quantize(module, example: dict, config: Pt2eConfig) -> torch.nn.Module:
    """Export with dynamic batch / sequence dims, annotate with the x86 inductor quantizer, calibrate, convert."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq  # importing it registers the passes
    from torch.export import Dim
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dims = {k: {i: Dim.AUTO for i in range(min(v.dim(), 2))} for k, v in example.items()}
    # export specialises a dimension of size 1 to 1 (its 0/1 rule), so a batch-1 example would give a graph that
    # refuses the calibration batches: export from two copies of it (the rows are independent)
    example = {k: v.repeat(2, *([1] * (v.dim() - 1))) if v.dim() and v.shape[0] == 1 else v for k, v in example.items()}
    exported = torch.export.export(copy.deepcopy(module).eval(), (), example, dynamic_shapes=dims, strict=False)
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config(
        is_dynamic=config.mode == "dynamic", reduce_range=config.reduce_range))
    prepared = prepare_pt2e(exported.module(), quantizer)
    batches = _calibration(config, example) if config.mode == "static" else [example]
    with torch.no_grad():
        for batch in batches:  # static: observers record ranges; dynamic: one call to settle the graph
            prepared(**batch)
    return convert_pt2e(prepared)


def _calibration(config: Pt2eConfig, example: dict) -> list[dict]:
    from workbench.steps.openvino import load_calibration_set

    batches = load_calibration_set(config.calibration)
    missing = set(example) - set(batches[0])
    if missing:
        raise ValueError(f"calibration set {config.calibration} lacks inputs {sorted(missing)} the model takes: "
                         "save it from this task's calibration_batches")
    return [{k: torch.as_tensor(b[k]) for k in example} for b in batches]


def _token_example(module, names) -> dict | None:
    """A batch of 8 x 64 token ids for a Hugging Face token model (only traced, never used for ranges), else None."""
    vocab = getattr(getattr(module, "config", None), "vocab_size", None)
    if not vocab or (names is not None and "input_ids" not in names):
        return None
    ids = torch.randint(0, vocab, (BATCH_BUCKET, SEQ_BUCKET), generator=torch.Generator().manual_seed(0))
    extra = {"attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return {"input_ids": ids, **{k: v for k, v in extra.items() if names is None or k in names}}


@register_step("pt2e", Pt2eConfig)
def pt2e_step(variant: Variant, config: Pt2eConfig) -> Variant:
    """PT2E int8 of a torch fp32 CPU variant (see the module docstring)."""
    from workbench.runtime.cpu import isa_summary

    module = require_torch_module(variant, "pt2e", "apply it to the torch fp32 baseline")
    if variant.device != "cpu" or variant.precision != "fp32":
        raise ValueError(f"pt2e needs a torch fp32 CPU variant, got {variant.name!r} ({variant.device}, "
                         f"{variant.precision}): apply it to task.baseline('cpu')")
    if not isa_summary().get("avx2"):
        raise ValueError("PT2E int8 not available here: no AVX2, oneDNN has no int8 fast path on this CPU")
    names = getattr(variant.runner, "input_names", None)
    example = variant.meta.get("example_inputs") or _token_example(module, names)
    if example is None:
        raise ValueError("pt2e needs meta['example_inputs'] (a batch of the model's inputs) to export the graph: "
                         "dataclasses.replace(variant, meta={**variant.meta, 'example_inputs': task.example_inputs(8)})")
    example = {k: torch.as_tensor(v) for k, v in example.items() if names is None or k in names}
    start = time.perf_counter()
    converted = _quantize(module, example, config)
    quantize_seconds = time.perf_counter() - start
    runner = Pt2eRunner(converted, names, getattr(variant.runner, "threads", None))
    runner(example)  # the compilation, timed apart from every measured call
    meta = {"mode": config.mode, "quantize_seconds": round(quantize_seconds, 3),
            "compile_seconds": sum(runner.compile_seconds.values()), "example_inputs": example,
            "quantizer": "torchao X86InductorQuantizer"}
    return dataclasses.replace(variant, name=f"torch-int8-pt2e-{config.mode}", precision="int8", runner=runner,
                               model=converted, meta=meta, id="")


__all__ = ["Pt2eConfig", "pt2e_step", "Pt2eRunner"]
