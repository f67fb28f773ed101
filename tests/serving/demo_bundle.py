"""Shared by test_bundle / test_verify / test_serve_check: one real bundle of the demo classifier per test run.

Built once per process (export + a small sweep take ~15 s on 2 cores) into its own temp folder; tests that tamper
with a bundle copy it first.
"""
import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def demo_setup():
    """(task, onnx variant, results rows, bundle path, root temp folder)."""
    from workbench.core import apply
    from workbench.serving.bundle.export import export_bundle
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.tasks import get_task

    root = Path(tempfile.mkdtemp(prefix="workbench-bundle-test-"))
    atexit.register(shutil.rmtree, root, True)
    task = get_task("text-classification")
    onnx_v = apply(task.baseline(), ExportOnnxConfig(threads=2, out_dir=str(root / "onnx")))
    rows = sweep_batching(task, onnx_v, SweepConfig(batch_sizes=(1, 2, 4), seq_lens=(32,), point_seconds=1.0,
                                                    threads=1), progress=False)  # 1 thread: steady on a shared CPU
    rows.append({"variant_id": onnx_v.id, "variant": onnx_v.name, "scenario": "latency",
                 **task.evaluate(onnx_v, limit=64).as_row()})
    # These tests are about files and serving, not the plan: a loaded machine's unstable sweep still gives a bundle.
    bundle = export_bundle(onnx_v, rows, to=root / "bundle", task=task, slo_ms=10_000, percentile="p95",
                           allow_unstable=True)
    return task, onnx_v, rows, bundle, root


def copy_bundle(dest: Path) -> Path:
    shutil.copytree(demo_setup()[3], dest)
    return dest
