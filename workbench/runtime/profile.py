"""Where a variant's time goes: the share of kernel time per kernel or op, from the profiler of its runtime
(OpenVINO performance counters, ONNX Runtime's profiler, torch's profiler). It says what limits a speed-up and
whether the kernels an arm was meant to use (AMX, VNNI, int8 GEMMs) are the ones that ran.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from workbench.runtime import onnx_file, openvino_file, runner_threads


def kernel_profile(variant, inputs: dict, runs: int = 3) -> dict[str, float]:
    """Share of kernel time per kernel / op name over ``runs`` calls, from the profiler of the variant's runtime:
    OpenVINO performance counters (kernel names carry ISA and precision, e.g. ``brgemm_avx512_amx_I8``), ONNX
    Runtime's profiler (op types, e.g. ``MatMulInteger``), torch's profiler (ops, e.g. ``onednn::qlinear_pointwise``).
    Empty when the variant has nothing to profile."""
    if openvino_file(variant) is not None:
        return variant.runner.kernel_profile(inputs, runs)
    if onnx_file(variant) is not None:
        return op_time_profile(onnx_file(variant), inputs, runner_threads(variant), runs=runs,
                               level=variant.meta.get("ort_level", "all"))
    if variant.backend != "torch":
        return {}
    import torch

    variant(inputs)  # a first call outside the profile (allocation, compilation)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            variant(inputs)
    # self time, top-level ops only: nested ops would count the same microseconds twice
    per_op = {e.key: e.self_cpu_time_total for e in prof.key_averages() if "::" in e.key}
    total = sum(per_op.values()) or 1.0
    return {k: round(v / total, 4) for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}


def op_time_profile(path: str | Path, inputs: dict, threads: int | None = None, runs: int = 20,
                    level: str = "all") -> dict[str, float]:
    """Share of kernel time per operator type (fractions summing to 1), from ORT's profiler over ``runs`` calls."""
    import onnxruntime as ort

    from workbench.runtime.ort import OrtRunner

    runner = OrtRunner(path, threads=threads, level=level)
    feed = runner.feed(inputs)
    opts = runner.session.get_session_options()
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "prof")
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=runner.providers)
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: Counter = Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e.get("args", {}).get("op_name", "?")] += e.get("dur", 0)
    total = sum(per_op.values()) or 1
    return {op: round(us / total, 4) for op, us in per_op.most_common()}


__all__ = ["kernel_profile", "op_time_profile"]
