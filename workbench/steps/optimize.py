"""Graph optimisation step: ONNX Runtime transformer fusions written to a new ONNX file, fused-op counts recorded.

Levels follow optimum's O1-O3 naming (ORTOptimizer wraps the same onnxruntime.transformers optimizer, but needs an
ORTModel object; this step works file to file on any exported variant):
- O1: ORT basic graph optimisations only (constant folding, redundant node removal), saved offline.
- O2: O1 + transformer fusions (Attention, SkipLayerNormalization, EmbedLayerNormalization, BiasGelu).
- O3: O2 + GELU approximation (FastGelu: tanh form, ~1e-3 different from erf GELU, faster).
The fused model only runs on ONNX Runtime (contrib ops), which is what this workbench serves with.
The fusion model type comes from the family adapter (:mod:`workbench.runtime.families`); a family ORT has no fusions
for (llama, mistral, qwen2, ...) gets O1 and a note in ``meta["optimize_note"]`` instead of an error.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

from workbench.core import Variant, register_step
from workbench.runtime import require_onnx_file
from workbench.steps.onnx_io import onnx_variant, require_single_graph, step_dir
from workbench.runtime.families import FAMILIES, model_type_beside, ort_model_type
from workbench.util.files import publish_dir, write_checksums

LEVELS = ("O1", "O2", "O3")
FAMILY_TYPES = {f.ort_model_type for f in FAMILIES.values()}
FUSED_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu",
             "FastGelu", "Gelu", "LayerNormalization", "SkipSimplifiedLayerNormalization")


@dataclass(frozen=True)
class OptimizeConfig:
    """Graph optimisation level and session settings of the optimised variant.

    Args:
        level: "O1", "O2" or "O3" (see module docstring).
        threads: ORT intra-op threads of the new variant (default: torch's count).
        out_dir: parent folder of the optimised ONNX file (default ``$WORKBENCH_ARTIFACTS/onnx``).

    Example:
        >>> fused = apply(onnx_fp32, OptimizeConfig.o2())       # doctest: +SKIP
        >>> fused.meta["fused_ops"]["Attention"]
    """

    level: str = "O2"
    threads: int | None = None
    out_dir: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"optimisation level {self.level!r} unknown: use one of {LEVELS}")

    @classmethod
    def o1(cls) -> "OptimizeConfig":
        return cls(level="O1")

    @classmethod
    def o2(cls) -> "OptimizeConfig":
        return cls(level="O2")

    @classmethod
    def o3(cls) -> "OptimizeConfig":
        return cls(level="O3")


def fused_op_counts(model) -> dict[str, int]:
    """How many nodes of each fused operator type the graph has (0 included, so before/after compare)."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False) if not hasattr(model, "graph") else model
    ops = [n.op_type for n in proto.graph.node]
    return {op: ops.count(op) for op in FUSED_OPS}


def _optimize(src: str, dst: str, family: str | None, level: str) -> None:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if level == "O1" or family is None:
        # ORT's own basic level, run offline: no contrib ops, the file stays portable.
        model = optimize_model(src, model_type=family or "bert", opt_level=1, only_onnxruntime=True)
    else:
        options = FusionOptions(family)
        options.enable_gelu_approximation = level == "O3"
        # opt_level 0: Python fusions only; ORT's own level-"all" pass still runs when the session loads.
        model = optimize_model(src, model_type=family, opt_level=0, optimization_options=options)
    model.save_model_to_file(dst)


@register_step("optimize", OptimizeConfig)
def optimize(variant: Variant, config: OptimizeConfig) -> Variant:
    """Fuse transformer subgraphs of an ONNX fp32 variant into ORT's fused kernels."""
    require_onnx_file(variant, "optimize")
    require_single_graph(variant, "optimize")
    if variant.precision == "int8":
        raise ValueError(f"{variant.name!r} is already quantised: optimise the fp32 model, then quantise it "
                         "(fusions do not match quantised subgraphs)")
    model_type = model_type_beside(variant.artifact_path)
    family = ort_model_type(model_type)
    level, note = config.level, None
    if level != "O1" and family is None:
        # ORT has no fusion pass for this graph (llama, mistral, qwen2, phi3, gemma, opt, ...): basic
        # optimisation still helps, and ORT's session-time fusions (e.g. SkipSimplifiedLayerNorm) still run.
        level = "O1"
        note = (f"{config.level} asked, O1 applied: onnxruntime.transformers.optimizer has no fusions for "
                f"model_type {model_type!r} (it knows {sorted(t for t in FAMILY_TYPES if t)})")
    before = fused_op_counts(variant.artifact_path)
    dest = step_dir(variant, "optimize", config, config.out_dir)
    with publish_dir(dest) as tmp:
        _optimize(str(variant.artifact_path), str(tmp / "model.onnx"), family, level)
        for extra in variant.artifact_path.parent.iterdir():  # config / tokenizer files travel along
            if extra.is_file() and extra.name != "checksums.json" and not extra.name.startswith("model.onnx"):
                shutil.copy2(extra, tmp / extra.name)
        sums = write_checksums(tmp)
    after = fused_op_counts(dest / "model.onnx")
    return onnx_variant(variant, dest / "model.onnx", f"ort-fp32-{level.lower()}", "fp32", config.threads,
                        meta={"sha256": sums["model.onnx"], "fused_ops": after, "fused_ops_before": before,
                              "optimizer_family": family, "optimize_level": level,
                              **({"optimize_note": note} if note else {})})


__all__ = ["OptimizeConfig", "optimize", "fused_op_counts"]
