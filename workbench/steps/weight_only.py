"""Weight-only int8 / int4 of a torch decoder: the Linear weights stored in 8 or 4 bits, activations stay float.

Decode at small batch reads every weight once per token, so the speed-up comes from fewer weight bytes, and only
through a kernel that reads the packed weights directly (one that dequantises to fp32 first reads more, not less:
torchao's ``Int8WeightOnlyConfig`` runs ~0.4x fp32 on this CPU). Kernels, by device:

- CPU int4: torchao's ``Int4OpaqueTensor`` (``PrototypeInt4WeightOnlyConfig``: ATen's ``_weight_int4pack_mm_for_cpu``,
  group-wise asymmetric, groups of 32/64/128). Fast with bf16 activations only, so each quantised Linear casts its
  input to bf16 and its output back (the rest of the model stays fp32).
- CPU int8: ATen's ``_weight_int8pack_mm`` (per-output-channel symmetric int8, bf16 activations), the kernel
  torchao's older int8 CPU layout called; torchao 0.18's ``Int8Tensor`` dequantises instead.
- CUDA int4: torchao ``Int4WeightOnlyConfig`` with the tinygemm ``tile_packed_to_4d`` packing (bf16).
- CUDA int8: torchao ``Int8WeightOnlyConfig`` (bf16).

A kernel that is missing here raises :class:`WeightOnlyUnavailable` with the reason (checked on a tiny layer first),
never a silent fallback. GPT-2's ``Conv1D`` layers are turned into ``nn.Linear`` first so they are quantised too.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.runtime.torch_runner import TorchRunner

BITS = (4, 8)
INT4_GROUP_SIZES = (32, 64, 128)


class WeightOnlyUnavailable(RuntimeError):
    """The weight-only kernel for these bits is not available on this device (the message says why)."""


class _Bf16Compute(torch.nn.Module):
    """Runs a quantised Linear on bf16 activations (what the int4/int8 kernels are fast on) and returns the input's
    dtype, so the rest of the model keeps its precision."""

    def __init__(self, inner: torch.nn.Module, bits: int, group_size: int | None):
        super().__init__()
        self.inner, self.bits, self.group_size = inner, bits, group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.bfloat16)).to(x.dtype)

    def weight_only_scheme(self):
        """torchao's int4 is group-wise asymmetric, its int8 per-channel symmetric; neither exposes its integers here,
        so the float weight is read through the layer's own kernel (the layer applied to the identity gives W^T:
        torchao's CPU int4 tensor has no dequantize op)."""
        from workbench.runtime.weight_only import WeightOnlyScheme

        inner = self.inner

        def dequantize() -> torch.Tensor:
            w = inner(torch.eye(inner.in_features, dtype=torch.bfloat16, device=inner.weight.device)).float()
            if inner.bias is not None:
                w = w - inner.bias.float()
            return w.t().contiguous()

        return WeightOnlyScheme(bits=self.bits, group_size=self.group_size, symmetric=self.bits == 8,
                                out_features=inner.out_features, in_features=inner.in_features, bias=inner.bias,
                                dequantize=dequantize)


class Int8PackLinear(torch.nn.Module):
    """y = x @ (q * scale)^T + b with int8 ``q`` [out, in], one bf16 scale per output channel, read by ATen's
    ``_weight_int8pack_mm`` without materialising a float weight."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        w = linear.weight.detach()
        # row blocks, so a bf16 checkpoint never has a whole layer in fp32 at once (a 32000 x 768 LM head: 98 MB)
        blocks = range(0, w.shape[0], 2048)
        scale = torch.cat([(w[i:i + 2048].float().abs().amax(dim=1) / 127).clamp(min=1e-8) for i in blocks])
        q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
        for i in blocks:
            q[i:i + 2048] = (w[i:i + 2048].float() / scale[i:i + 2048, None]).round().clamp(-127, 127)
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().clone(),
                                                                        requires_grad=False)

    def weight_only_scheme(self):
        """Symmetric per output channel: the int8 values and scales are what other int8 formats store as they are."""
        from workbench.runtime.weight_only import WeightOnlyScheme

        out, inp = self.qweight.shape
        # dequantised in bf16 (what is written): a 32000 x 768 LM head is 49 MB, not a 98 MB fp32 temp
        return WeightOnlyScheme(bits=8, group_size=None, symmetric=True, out_features=out, in_features=inp,
                                bias=self.bias, int_weight=self.qweight, scales=self.scale.float()[:, None],
                                dequantize=lambda: self.qweight.to(torch.bfloat16) * self.scale.to(torch.bfloat16)[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)                       # [tokens, in]
        y = torch.ops.aten._weight_int8pack_mm(flat, self.qweight, self.scale).to(x.dtype)
        y = y.view(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias.to(x.dtype)


def _int4_config(group_size: int, device: str):
    if device == "cpu":
        from torchao.prototype.quantization.int4.inference_workflow import PrototypeInt4WeightOnlyConfig

        return PrototypeInt4WeightOnlyConfig(group_size=group_size, set_inductor_config=False)
    from torchao.quantization import Int4WeightOnlyConfig

    return Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d",
                                set_inductor_config=False)


def _quantize_linear(linear: torch.nn.Linear, bits: int, group_size: int) -> torch.nn.Module:
    """One Linear as its weight-only replacement on the Linear's own device."""
    device = linear.weight.device.type
    if bits == 8 and device == "cpu":
        return Int8PackLinear(linear)
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    inner = copy.deepcopy(linear).to(torch.bfloat16)
    config = _int4_config(group_size, device) if bits == 4 else Int8WeightOnlyConfig(set_inductor_config=False)
    quantize_(inner, config, filter_fn=lambda m, _fqn: isinstance(m, torch.nn.Linear))
    return _Bf16Compute(inner, bits, group_size if bits == 4 else None)


def kernel_name(bits: int, device: str) -> str:
    return {(4, "cpu"): "torchao Int4OpaqueTensor (_weight_int4pack_mm_for_cpu)",
            (8, "cpu"): "aten _weight_int8pack_mm", (4, "cuda"): "torchao Int4 tile_packed_to_4d (tinygemm)",
            (8, "cuda"): "torchao Int8WeightOnlyConfig"}.get((bits, device), f"none for {device}")


def check_kernel(bits: int, group_size: int, device: str) -> None:
    """Run the kernel once on a tiny layer; :class:`WeightOnlyUnavailable` with the reason if it cannot run here."""
    try:
        probe = torch.nn.Linear(2 * group_size, 64, bias=False, device=device)
        out = _quantize_linear(probe, bits, group_size)(torch.randn(1, 2 * group_size, device=device))
    except Exception as exc:  # ImportError (no torchao), NotImplementedError / RuntimeError (no kernel for device)
        raise WeightOnlyUnavailable(f"int{bits} weight-only ({kernel_name(bits, device)}) not available here: "
                                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    if not torch.isfinite(out).all():
        raise WeightOnlyUnavailable(f"int{bits} weight-only kernel on {device} returned non-finite values")


def apply_weight_only(model: torch.nn.Module, bits: int, group_size: int = 128) -> torch.nn.Module:
    """Quantise ``model``'s Linear weights to ``bits`` (in place; returns ``model``).

    Args:
        model: a torch decoder on CPU or CUDA (any float dtype; fp32 parts stay fp32).
        bits: 4 (group-wise, ``group_size`` weights per scale/zero) or 8 (per output channel on CPU).
        group_size: int4 group along the input dimension: 32, 64 or 128. Layers whose input size it does not
            divide stay float.

    Raises:
        ValueError: bad bits / group size, or no Linear layer to quantise.
        WeightOnlyUnavailable: the kernel for ``bits`` is missing on the model's device.

    Example:
        >>> model = apply_weight_only(model, bits=4, group_size=128)     # doctest: +SKIP
        >>> model.weight_only                                            # kernel and layer counts
    """
    from workbench.steps.quantize.dynamic import conv1d_to_linear

    if bits not in BITS:
        raise ValueError(f"bits={bits} unsupported: use 4 (group-wise) or 8 (per channel)")
    if bits == 4 and group_size not in INT4_GROUP_SIZES:
        raise ValueError(f"group_size={group_size} unsupported for int4: use one of {INT4_GROUP_SIZES}")
    device = next(model.parameters()).device.type
    check_kernel(bits, group_size, device)
    conv1d_to_linear(model)
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, torch.nn.Linear) and (bits == 8 or child.in_features % group_size == 0)]
    if not targets:
        raise ValueError(f"no nn.Linear layer (with in_features divisible by {group_size}) to quantise")
    for parent, name, child in targets:
        setattr(parent, name, _quantize_linear(child, bits, group_size))
    model.weight_only = {"bits": bits, "group_size": group_size if bits == 4 else None, "device": device,
                         "kernel": kernel_name(bits, device), "quantized_layers": len(targets)}
    return model


@dataclass(frozen=True)
class WeightOnlyConfig:
    """Weight-only quantisation of a torch decoder.

    Args:
        bits: 4 (group-wise) or 8 (per output channel).
        group_size: int4 weights per scale: 32, 64 or 128 (ignored for int8).

    Example:
        >>> int4 = apply(task.baseline(), WeightOnlyConfig.int4())     # doctest: +SKIP
        >>> int4.meta["weight_bytes_per_step"] / int4.meta["parent_weight_bytes_per_step"]
    """

    bits: int = 4
    group_size: int = 128

    def __post_init__(self):
        if self.bits not in BITS:
            raise ValueError(f"bits={self.bits} unsupported: use 4 (group-wise) or 8 (per channel)")
        if self.bits == 4 and self.group_size not in INT4_GROUP_SIZES:
            raise ValueError(f"group_size={self.group_size} unsupported for int4: use one of {INT4_GROUP_SIZES}")

    @classmethod
    def int8(cls) -> "WeightOnlyConfig":
        return cls(bits=8)

    @classmethod
    def int4(cls) -> "WeightOnlyConfig":
        return cls(bits=4, group_size=128)

    @classmethod
    def int4_g32(cls) -> "WeightOnlyConfig":
        return cls(bits=4, group_size=32)


@register_step("weight_only", WeightOnlyConfig)
def weight_only_step(variant: Variant, config: WeightOnlyConfig) -> Variant:
    """int8 / int4 weights of a torch decoder; ``meta`` carries the kernel and the weight bytes read per step."""
    from workbench.runtime.kv_budget import decode_weight_bytes

    module = require_torch_module(variant, "weight_only", "apply it to the torch baseline (for ONNX use "
                                  "WeightOnlyOrtConfig on the export)")
    if variant.precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"{variant.name!r} is already {variant.precision}: quantise its float parent")
    model = apply_weight_only(copy.deepcopy(module).eval(), config.bits, config.group_size)
    runner = TorchRunner(model, variant.device, getattr(variant.runner, "input_names", None),
                         getattr(variant.runner, "threads", None))
    meta = {**model.weight_only, "weight_bytes_per_step": decode_weight_bytes(model),
            "parent_weight_bytes_per_step": decode_weight_bytes(module)}
    precision = "int8" if config.bits == 8 else "int4"
    return dataclasses.replace(variant, name=f"torch-int{config.bits}-wo", precision=precision, runner=runner,
                               model=model, meta=meta, id="")


__all__ = ["WeightOnlyConfig", "WeightOnlyUnavailable", "apply_weight_only", "weight_only_step", "Int8PackLinear",
           "check_kernel"]
