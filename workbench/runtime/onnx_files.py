"""The files an ONNX model is made of: the ``.onnx`` graph and the external-data files its tensors point to.

Exporters name external data differently (optimum ``model.onnx_data``, onnx ``<name>.data``, ORT tools
``model.onnx.data``, users ``weights.bin``...), so the names are read from the graph itself: every tensor stored
outside the protobuf carries a ``location`` entry relative to the model's folder. Size, the bundle copy, verify and
serve-check all ask :func:`onnx_files` so that a model is always measured and moved whole.

Example:
    >>> onnx_files("artifacts/onnx/export_onnx-1a2b/model.onnx")     # doctest: +SKIP
    [PosixPath('.../model.onnx'), PosixPath('.../model.onnx_data')]
"""
from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator


def _graph_tensors(graph) -> Iterator:
    """Every TensorProto of a graph: initializers, sparse initializers, tensor attributes, and subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _load_graph(path: str | Path):
    import onnx

    return onnx.load(str(path), load_external_data=False)


def external_data_locations(path: str | Path) -> list[str]:
    """The ``location`` of every external-data file the ONNX model at ``path`` uses, in first-use order.

    Raises ValueError for a location that is absolute or leaves the model's folder (a model must be movable).
    """
    import onnx

    model = _load_graph(path)
    locations: list[str] = []
    for tensor in _graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if not location:
            raise ValueError(f"{path}: tensor {tensor.name!r} is stored externally without a location")
        rel = PurePosixPath(location.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"{path}: tensor {tensor.name!r} points outside the model's folder ({location!r}): "
                             "save the external data beside the .onnx file")
        if str(rel) not in locations:
            locations.append(str(rel))
    return locations


def external_data_files(path: str | Path) -> list[Path]:
    """Paths of the external-data files the ONNX model at ``path`` reads (they may be missing: check)."""
    folder = Path(path).parent
    return [folder / loc for loc in external_data_locations(path)]


def onnx_files(path: str | Path) -> list[Path]:
    """The model file followed by its external-data files: everything to measure, hash or copy."""
    return [Path(path)] + external_data_files(path)


def copy_onnx(path: str | Path, dest_dir: str | Path) -> list[Path]:
    """Copy the model and its external data into ``dest_dir`` (same names, same relative layout); returns the copies."""
    path, dest_dir = Path(path), Path(dest_dir)
    copies = []
    for f in onnx_files(path):
        target = dest_dir / f.relative_to(path.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        copies.append(target)
    return copies


def initializer_numels(path: str | Path) -> list[tuple[int, int]]:
    """``(data_type, element count)`` of every tensor of the graph (from its dims; external data is not read)."""
    import math

    return [(t.data_type, math.prod(t.dims)) for t in _graph_tensors(_load_graph(path).graph)]


__all__ = ["external_data_locations", "external_data_files", "onnx_files", "copy_onnx", "initializer_numels"]
