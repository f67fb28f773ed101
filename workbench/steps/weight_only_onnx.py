"""Weight-only int4 / int8 of an ONNX decoder: ONNX Runtime's MatMulNBits (block-wise weights, float activations).

Decode at batch 1 reads every weight once per token, so fewer weight bytes is the CPU speed-up; MatMulNBits is the
kernel built for it (MLAS: weights unpacked block by block in registers, never materialised in fp32). With
``accuracy_level=4`` the activations are quantised to int8 per block and the dot products run on VNNI / AMX-INT8
where the CPU has them (level 0/1: fp32 compute). The quantiser is
``onnxruntime.quantization.matmul_nbits_quantizer`` (it needs the ``onnx_ir`` package).

Only ``MatMul`` nodes with a constant weight are quantised. GPT-2's ``Conv1D`` exports as ``Gemm``, which the
quantiser skips, so every ``Gemm`` with a constant weight is first rewritten as ``MatMul`` (+ ``Add`` for its bias):
the same maths, and the projections are quantised too.

Apply it to the workbench's ONNX export with KV cache (``ExportOnnxConfig()``), so the variant generates with the
cache through :meth:`workbench.runtime.ort.OrtRunner.generate_greedy`.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.core import Variant, register_step
from workbench.runtime import require_onnx_file
from workbench.steps.onnx_io import onnx_variant, step_dir
from workbench.util.files import publish_dir, write_checksums

BITS = (4, 8)
BLOCK_SIZES = (16, 32, 64, 128, 256)
ACCURACY_LEVELS = (0, 1, 2, 3, 4)   # 0: unset (fp32), 1: fp32, 2: fp16, 3: bf16, 4: int8 compute


@dataclass(frozen=True)
class WeightOnlyOrtConfig:
    """MatMulNBits settings.

    Args:
        bits: 4 or 8 bits per weight.
        block_size: weights per scale along the input dimension (32: more accurate, 128: fewer scale bytes).
        accuracy_level: 4 quantises activations to int8 inside the kernel (fast on VNNI/AMX); 0/1 computes in fp32.
        symmetric: symmetric blocks (no zero points: fewer bytes, the fast int8-compute path).
        threads: ORT intra-op threads of the new variant (default: torch's count).
        out_dir: parent folder of the quantised ONNX file (default ``$WORKBENCH_ARTIFACTS/onnx``).

    Example:
        >>> int4 = apply(apply(task.baseline(), ExportOnnxConfig()), WeightOnlyOrtConfig.int4())  # doctest: +SKIP
    """

    bits: int = 4
    block_size: int = 32
    accuracy_level: int = 4
    symmetric: bool = True
    threads: int | None = None
    out_dir: str | None = None

    def __post_init__(self):
        if self.bits not in BITS:
            raise ValueError(f"bits={self.bits} unsupported by MatMulNBits here: use one of {BITS}")
        if self.block_size not in BLOCK_SIZES:
            raise ValueError(f"block_size={self.block_size} invalid: use a power of two in {BLOCK_SIZES}")
        if self.accuracy_level not in ACCURACY_LEVELS:
            raise ValueError(f"accuracy_level={self.accuracy_level} unknown: use one of {ACCURACY_LEVELS} "
                             "(4 = int8 compute, fastest on VNNI/AMX CPUs)")

    @classmethod
    def int4(cls) -> "WeightOnlyOrtConfig":
        return cls(bits=4, block_size=32)

    @classmethod
    def int4_block128(cls) -> "WeightOnlyOrtConfig":
        return cls(bits=4, block_size=128)

    @classmethod
    def int8(cls) -> "WeightOnlyOrtConfig":
        return cls(bits=8, block_size=32)


def _const(graph, name: str):
    return next((init for init in graph.initializer if init.name == name), None)


def gemm_to_matmul(model) -> int:
    """Rewrite (in place) each ``Gemm`` whose weight is an initializer as ``MatMul`` (+ ``Add`` of its bias).

    ``Gemm(A, B, C) = alpha * A @ op(B) + beta * C`` with op(B) = B or B^T (transB); only alpha = beta = 1 and
    transA = 0 (what exporters emit for Linear / Conv1D) are rewritten, others are left as they are. Returns how many.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph, count = model.graph, 0
    for index, node in reversed(list(enumerate(graph.node))):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = _const(graph, node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        if weight is None or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            continue
        if attrs.get("transB", 0):  # MatMul wants [in, out]: store the weight transposed once
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight).T.copy(), weight.name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "_matmul" if has_bias else node.output[0]
        new = [helper.make_node("MatMul", [node.input[0], node.input[1]], [mm_out], name=f"{node.name}_MatMul")]
        if has_bias:
            new.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add"))
        del graph.node[index]
        for offset, n in enumerate(new):
            graph.node.insert(index + offset, n)
        count += 1
    onnx.checker.check_model(model) if model.ByteSize() < 2**31 - 1 else None
    return count


def fold_weight_transposes(model) -> int:
    """Replace each ``Transpose`` of an initializer that feeds a ``MatMul`` by the transposed initializer (in place).

    A tied LM head exported with weight deduplication reads ``Transpose(embedding)``: not a constant, so the quantiser
    would skip it. Folded, the head gets its own (quantised) copy; the embedding stays float for its row lookups.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    matmul_weights = {n.input[1] for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1}
    folded = [n for n in graph.node
              if n.op_type == "Transpose" and n.input[0] in inits and n.output[0] in matmul_weights]
    for node in folded:
        perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
        array = numpy_helper.to_array(inits[node.input[0]])
        graph.initializer.append(numpy_helper.from_array(array.transpose(perm).copy(), node.output[0]))
        graph.node.remove(node)
    return len(folded)


def onnx_weight_bytes(path: str | Path) -> int:
    """Bytes of the weights one decode step reads: every initializer (packed int4/int8 data, scales, zero points,
    float weights), except tables only ever read by ``Gather`` (embeddings: one row per token, not the table)."""
    import onnx

    model = onnx.load(str(path))
    gathered = {n.input[0] for n in model.graph.node if n.op_type in ("Gather", "GatherBlockQuantized")}
    used_elsewhere = {i for n in model.graph.node if n.op_type not in ("Gather", "GatherBlockQuantized")
                      for i in n.input}
    skip = gathered - used_elsewhere
    return sum(len(init.raw_data) or _numel_bytes(init) for init in model.graph.initializer if init.name not in skip)


def _numel_bytes(init) -> int:
    from onnx import numpy_helper

    return int(numpy_helper.to_array(init).nbytes)


def _quantize(src: Path, dest: Path, config: WeightOnlyOrtConfig) -> dict:
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:  # the quantiser imports onnx_ir, which onnxruntime does not pull in
        raise ImportError(f"onnxruntime's MatMulNBits quantiser not available here ({exc}): pip install onnx_ir") \
            from exc
    model = onnx.load(str(src))
    rewritten = gemm_to_matmul(model)
    fold_weight_transposes(model)
    quantizer = MatMulNBitsQuantizer(model, bits=config.bits, block_size=config.block_size,
                                     is_symmetric=config.symmetric, accuracy_level=config.accuracy_level)
    quantizer.process()
    big = quantizer.model.model.ByteSize() > 2**31 - 1   # protobuf's 2 GB limit: weights go to a side file
    quantizer.model.save_model_to_file(str(dest), use_external_data_format=big)
    counts = {}
    for node in onnx.load(str(dest), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {"gemm_rewritten": rewritten, "matmul_nbits_nodes": counts.get("MatMulNBits", 0),
            "float_matmul_nodes": counts.get("MatMul", 0)}


@register_step("weight_only_ort", WeightOnlyOrtConfig)
def weight_only_ort(variant: Variant, config: WeightOnlyOrtConfig) -> Variant:
    """MatMulNBits int4 / int8 weights of an fp32 ONNX decoder (keeps its KV cache inputs)."""
    src = require_onnx_file(variant, "weight_only_ort", "export the decoder first: apply(base, ExportOnnxConfig())")
    if variant.precision != "fp32":
        raise ValueError(f"{variant.name!r} is {variant.precision}: apply weight-only quantisation to the fp32 export")
    dest = step_dir(variant, "weight_only_ort", config, config.out_dir)
    with publish_dir(dest) as tmp:
        for extra in src.parent.iterdir():   # config.json / tokenizer beside the graph: runners read the cache shape
            if extra.is_file() and extra.suffix in (".json", ".txt", ".model") and extra.name != "checksums.json":
                shutil.copy2(extra, tmp / extra.name)
        facts = _quantize(src, tmp / "model.onnx", config)
        if not facts["matmul_nbits_nodes"]:
            raise ValueError(f"no MatMul with a constant weight in {src}: nothing to quantise weight-only")
        sums = write_checksums(tmp)
    facts.update(bits=config.bits, block_size=config.block_size, accuracy_level=config.accuracy_level,
                 sha256=sums["model.onnx"], weight_bytes_per_step=onnx_weight_bytes(dest / "model.onnx"),
                 parent_weight_bytes_per_step=onnx_weight_bytes(src))
    # the weights' precision: int4 projections (norms and attention math stay fp32)
    precision = "int8" if config.bits == 8 else "int4"
    name = f"ort-int{config.bits}-wo-b{config.block_size}"
    return onnx_variant(variant, dest / "model.onnx", name, precision, config.threads,
                        level=variant.meta.get("ort_level", "all"), meta={"weight_only": facts})


__all__ = ["WeightOnlyOrtConfig", "weight_only_ort", "gemm_to_matmul", "onnx_weight_bytes"]
