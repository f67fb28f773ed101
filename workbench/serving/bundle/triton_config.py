"""Triton ``config.pbtxt``: build it from an ONNX graph and a batching plan, and check it against Triton's schema.

The schema is Triton's own ``model_config.proto`` as compiled in the ``tritonclient`` wheel
(``tritonclient/grpc/model_config_pb2.py``). It is loaded straight from its file so that tritonclient's gRPC
extras (grpcio) are not needed. Parsing with protobuf text format rejects unknown fields, wrong types and bad enum
values exactly as tritonserver does; :func:`check_model_config` adds the cross-field rules Triton applies at load
(batch sizes within ``max_batch_size``, unique tensor names, valid dims, ...).
"""
from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from functools import lru_cache

# ONNX TensorProto element type -> Triton data type (the ones a model bundle can carry).
ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
                  7: "TYPE_INT64", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
                  13: "TYPE_UINT64", 16: "TYPE_BF16"}
TRITON_TO_NUMPY = {"TYPE_FP32": "float32", "TYPE_UINT8": "uint8", "TYPE_INT8": "int8", "TYPE_UINT16": "uint16",
                   "TYPE_INT16": "int16", "TYPE_INT32": "int32", "TYPE_INT64": "int64", "TYPE_BOOL": "bool",
                   "TYPE_FP16": "float16", "TYPE_FP64": "float64", "TYPE_UINT32": "uint32", "TYPE_UINT64": "uint64"}
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class ModelConfigError(ValueError):
    """A config.pbtxt that Triton would refuse to load."""


@lru_cache(maxsize=1)
def model_config_pb2():
    """Triton's compiled model-config schema from the tritonclient wheel (no grpc import)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("Triton's model-config schema comes from the tritonclient package: "
                           "pip install --no-deps tritonclient==2.73.0 (see README, Serving bundle)")
    path = f"{list(spec.submodule_search_locations)[0]}/grpc/model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("workbench._triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class TensorSpec:
    """One model input/output as Triton sees it: dims exclude the batch dimension, -1 = variable."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def tensor_specs_from_onnx(path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ONNX graph with the leading (batch) dim dropped and symbolic dims as -1."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def spec(value) -> TensorSpec:
        t = value.type.tensor_type
        if t.elem_type not in ONNX_TO_TRITON:
            raise ModelConfigError(f"tensor {value.name!r} has ONNX element type {t.elem_type}, which a Triton "
                                   "bundle cannot carry: export with float/int inputs and outputs")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if not dims:
            raise ModelConfigError(f"tensor {value.name!r} is a scalar: Triton batching needs a batch dimension")
        return TensorSpec(value.name, ONNX_TO_TRITON[t.elem_type], tuple(dims[1:]) or (1,))

    inputs = [spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in graph.output]


def render_config(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec], max_batch_size: int,
                  preferred_batch_sizes: list[int], max_queue_delay_us: int, instance_kind: str = "KIND_CPU",
                  instance_count: int = 1, threads: int | None = None) -> str:
    """config.pbtxt text (protobuf text format) for Triton's onnxruntime backend serving ``model.onnx``, checked with
    :func:`check_model_config` before it is returned. (serve-check swaps the backend for its Python twin.)"""
    from google.protobuf import text_format

    pb = model_config_pb2()
    cfg = pb.ModelConfig(name=name, backend="onnxruntime", max_batch_size=max_batch_size,
                         default_model_filename="model.onnx")
    for spec in inputs:
        cfg.input.add(name=spec.name, data_type=pb.DataType.Value(spec.data_type), dims=list(spec.dims))
    for spec in outputs:
        cfg.output.add(name=spec.name, data_type=pb.DataType.Value(spec.data_type), dims=list(spec.dims))
    cfg.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
    cfg.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    cfg.instance_group.add(kind=pb.ModelInstanceGroup.Kind.Value(instance_kind), count=instance_count)
    if threads:
        # The ORT backend's own knob: serve with the thread count the sweep was measured with.
        cfg.parameters["intra_op_thread_count"].string_value = str(threads)
    text = text_format.MessageToString(cfg)
    check_model_config(text, expected_name=name)
    return text


def check_model_config(text: str, expected_name: str | None = None):
    """Parse ``text`` with Triton's schema and apply its load-time rules; returns the ModelConfig message.

    Raises:
        ModelConfigError: naming the first broken rule and how to fix it.
    """
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        cfg = text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as exc:
        raise ModelConfigError(f"config.pbtxt does not match Triton's model-config schema: {exc}") from exc
    problems = _rule_violations(cfg, pb, expected_name)
    if problems:
        raise ModelConfigError("config.pbtxt breaks Triton's rules: " + "; ".join(problems))
    return cfg


def _rule_violations(cfg, pb, expected_name: str | None) -> list[str]:
    problems = []
    if not cfg.name or not NAME_RE.match(cfg.name):
        problems.append(f"name {cfg.name!r} must be non-empty letters, digits, '_', '.', '-'")
    if expected_name is not None and cfg.name != expected_name:
        problems.append(f"name {cfg.name!r} must equal its folder name {expected_name!r}")
    if not (cfg.backend or cfg.platform):
        problems.append("set backend (e.g. \"onnxruntime\") or platform")
    if cfg.max_batch_size < 0:
        problems.append(f"max_batch_size {cfg.max_batch_size} must be >= 0")
    for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
        if not tensors:
            problems.append(f"at least one {kind} is required")
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            problems.append(f"{kind} names repeat: {names}")
        for t in tensors:
            if t.data_type == pb.DataType.TYPE_INVALID:
                problems.append(f"{kind} {t.name!r} needs a data_type")
            if not t.dims or any(d == 0 or d < -1 for d in t.dims):
                problems.append(f"{kind} {t.name!r} dims {list(t.dims)} must be non-empty, each > 0 or -1")
    if cfg.HasField("dynamic_batching"):
        db = cfg.dynamic_batching
        if cfg.max_batch_size == 0:
            problems.append("dynamic_batching needs max_batch_size > 0")
        bad = [b for b in db.preferred_batch_size if not 1 <= b <= cfg.max_batch_size]
        if bad:
            problems.append(f"preferred_batch_size {bad} outside 1..max_batch_size ({cfg.max_batch_size})")
    for group in cfg.instance_group:
        if group.count < 1:
            problems.append(f"instance_group count {group.count} must be >= 1")
    return problems


__all__ = ["TensorSpec", "tensor_specs_from_onnx", "render_config", "check_model_config", "ModelConfigError",
           "model_config_pb2", "TRITON_TO_NUMPY"]
