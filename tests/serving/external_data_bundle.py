"""A serving bundle of a small ONNX model whose weights live in an external-data file under a non-default name.

Shared by test_verify / test_serve_check; built once per process (a tiny MLP, a two-point sweep: ~2 s).
"""
import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

DATA_NAME = "model.onnx_data.bin"   # neither onnx's "<name>.data" nor optimum's "model.onnx_data"


def save_mlp_with_external_data(folder: Path, location: str = DATA_NAME) -> Path:
    """x [batch, 64] -> MatMul 64x256 -> Relu -> MatMul 256x4 -> logits, every weight in ``folder/location``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 256)).astype(np.float32) / 8, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((256, 4)).astype(np.float32) / 16, "w2")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", 64])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 4])
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "mlp", [x], [y], [w1, w2]),
                              opset_imports=[helper.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return folder / "model.onnx"


@lru_cache(maxsize=1)
def external_data_setup():
    """(task, onnx variant, bundle path, source model path)."""
    import torch

    from workbench.core import Variant
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.runtime.ort import OrtRunner
    from workbench.serving.bundle.export import export_bundle
    from workbench.tasks.module_task import ModuleTask

    root = Path(tempfile.mkdtemp(prefix="workbench-extdata-test-"))
    atexit.register(shutil.rmtree, root, True)
    path = save_mlp_with_external_data(root / "onnx")
    inputs = {"x": torch.randn(4, 64, generator=torch.Generator().manual_seed(0))}
    task = ModuleTask(torch.nn.Identity(), lambda v: 1.0, inputs, name="mlp-extdata")
    variant = Variant(name="ort-fp32", task=task.name, backend="onnxruntime", device="cpu", precision="fp32",
                      runner=OrtRunner(path, threads=1), artifact_path=path, meta={"example_inputs": inputs})
    rows = sweep_batching(task, variant, SweepConfig(batch_sizes=(1, 2), point_seconds=0.5), progress=False)
    rows = [dict(r, stable=True) for r in rows]  # these tests are about files: a loaded CI machine must not stop them
    bundle = export_bundle(variant, rows, to=root / "bundle", task=task, n_reference=4)
    return task, variant, bundle, path
