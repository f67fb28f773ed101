"""Peak memory of the engine export path: load a bf16 checkpoint in bf16, weight-only int8 in place, write the engine
checkpoint; measured in a fresh process (``python -m workbench.serving.engine.footprint MODEL_DIR OUT``), because a
process's RSS high-water mark (VmHWM) starts afresh only at exec. The target: peak < 2x the checkpoint, i.e. no
fp32 copy of the model on the way.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _probe(model_dir: str, out: str) -> dict:
    import psutil
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.measure.memory import _high_water_mb
    from workbench.serving.engine.checkpoint import write_engine_checkpoint
    from workbench.steps.weight_only import apply_weight_only

    base_mb = psutil.Process().memory_info().rss / 2**20
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, use_safetensors=True).eval()
    loaded_mb = _high_water_mb()
    apply_weight_only(model, 8)           # in place: each Linear replaced by its int8 form
    write_engine_checkpoint(model, Path(out), "int8", None, Path(model_dir))
    return {"rss_after_imports_mb": round(base_mb, 1), "rss_after_load_mb": round(loaded_mb, 1),
            "peak_rss_mb": round(_high_water_mb(), 1)}


def export_peak_rss(model_dir: Path, out: Path, timeout_s: float = 900.0) -> dict:
    """Peak RSS of load bf16 + int8 + engine export in a child process, against the checkpoint's size (also above
    the interpreter's imports: torch and transformers alone are ~400 MB)."""
    import shutil

    ckpt_mb = sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")) / 2**20
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", __name__, str(model_dir), str(out)], capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    work_mb = fig["peak_rss_mb"] - fig["rss_after_imports_mb"]
    return {**fig, "checkpoint_mb": round(ckpt_mb, 1), "peak_over_imports_mb": round(work_mb, 1),
            "peak_over_imports_vs_checkpoint": round(work_mb / ckpt_mb, 3),
            "peak_vs_checkpoint": round(fig["peak_rss_mb"] / ckpt_mb, 3)}


if __name__ == "__main__":
    print(json.dumps(_probe(*sys.argv[1:3])))


__all__ = ["export_peak_rss"]
