"""scripts/gpu_check.sh --cpu: the GPU check's arms at tiny shapes on CPU, so the script cannot rot."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ("mbu_bf16_b1", "speedup_b1_vs_hf_eager", "speedup_b64_vs_hf_eager", "int4_speedup_vs_bf16_b1",
           "encoder_fp16_speedup_b64")


@pytest.mark.integration
def test_cpu_mode_writes_sane_json(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, env={"PYTHON": sys.executable,
                                                                             "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1])["device"] == out["device"] == "cpu"
    assert out["mode"] == "cpu-tiny" and isinstance(out["notes"], list)
    for key in NUMBERS:
        value = out[key]
        if value is None:   # an arm that could not run says why
            assert any(key.split("_")[0] in note or "failed" in note or "not measured" in note
                       for note in out["notes"]), (key, out["notes"])
        else:
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
    assert out["mbu_bf16_b1"] is None or out["mbu_bf16_b1"] > 0   # a tiny model may sit in cache: > 1 is flagged
    for arm in ("gpt2_b1", "gpt2_b4"):
        detail = out["details"][arm]
        assert detail["fast_tokens_per_s"] > 0 and detail["hf_tokens_per_s"] > 0
        assert "static cache" in detail["fast_loop"]
    assert out["optimize_cuda_pick"] is None and "no CUDA device" in out["details"]["gpu_arms"]["torch-fp16"]
    assert any(note.startswith("optimize_cuda: not run on CPU") for note in out["notes"])
    bf16 = out["details"]["llama_fast-loop-bf16_b1"]
    assert bf16["bytes_per_token"] > 0 and (bf16["bandwidth_utilisation"] <= 1 or bf16["bandwidth_flag"])


def test_gpu_mode_without_cuda_says_use_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0 and "--cpu" in proc.stderr
