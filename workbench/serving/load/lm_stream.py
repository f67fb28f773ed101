"""A Triton model repository that streams a causal LM's tokens (decoupled Python backend), from its ONNX graph.

The model (``<name>-stream``) takes ``INPUT_IDS`` (INT64, the prompt's token ids) and ``MAX_NEW_TOKENS`` (INT32) and
sends one ``TOKEN`` response per generated token (:mod:`workbench.serving.load.triton_lm_stream`), so TTFT, TPOT and
inter-token latency can be measured under load with :func:`workbench.serving.load.stream.open_loop_stream`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

CONFIG = '''name: "%(name)s"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "INPUT_IDS" data_type: TYPE_INT64 dims: [ -1 ] },
        { name: "MAX_NEW_TOKENS" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "TOKEN" data_type: TYPE_INT64 dims: [ 1 ] } ]
instance_group [ { count: %(instances)d kind: KIND_CPU } ]
parameters { key: "intra_op_thread_count" value: { string_value: "%(threads)d" } }
parameters { key: "eos_token_id" value: { string_value: "%(eos)d" } }
'''


def lm_stream_repository(onnx_path: Path, name: str, workdir: Path, dist: dict, threads: int = 1,
                         instances: int = 1, eos_token_id: int | None = None) -> tuple[Path, Path]:
    """(backends, repo) serving ``onnx_path`` (a causal LM's full-sequence graph and its external data) as the
    streaming model ``name``; ``eos_token_id`` ends a stream early (None: always MAX_NEW_TOKENS tokens)."""
    from workbench.serving.bundle.triton_server import python_backend_dir
    from workbench.runtime.onnx_files import onnx_files

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} is not an ONNX file: pass the LM bundle's model.onnx")
    if threads < 1 or instances < 1:
        raise ValueError(f"threads ({threads}) and instances ({instances}) must be >= 1")
    python_backend_dir(Path(workdir), dist)
    model_dir = Path(workdir) / "repo" / name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(CONFIG % {"name": name, "instances": instances, "threads": threads,
                                                      "eos": -1 if eos_token_id is None else eos_token_id})
    shutil.copy2(Path(__file__).with_name("triton_lm_stream.py"), model_dir / "1" / "model.py")
    for f in onnx_files(onnx_path):
        link = model_dir / "1" / f.relative_to(onnx_path.parent)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f.resolve(), link)
    if onnx_path.name != "model.onnx":
        os.rename(model_dir / "1" / onnx_path.name, model_dir / "1" / "model.onnx")
    return Path(workdir) / "backends", Path(workdir) / "repo"


__all__ = ["lm_stream_repository", "CONFIG"]
