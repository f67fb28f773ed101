import sys
import types

import pytest

from workbench.arms.base import Arm
from workbench.optimize.budget import Budget
from workbench.optimize.candidates import candidates

ISA = {"avx2": True, "avx512": True, "avx512_bf16": True, "vnni": True, "amx_bf16": False, "amx_int8": False}


def _fake_distilled(monkeypatch, seconds):
    mod = types.ModuleType("workbench.arms.distilled")
    mod.training_seconds_estimate = lambda task, **kw: seconds
    mod.student_arms = lambda isa, calibration=None, **kw: [Arm("student-fp32", "distilled"),
                                                            Arm("student-int8", "distilled")]
    monkeypatch.setitem(sys.modules, "workbench.arms.distilled", mod)
    lm = types.ModuleType("workbench.arms.distilled_llm")
    lm.training_seconds_estimate = lambda task, **kw: seconds
    lm.lm_student_arms = lambda compile=True, device="cpu", **kw: [Arm("student+hf-generate-fp32", "distill"),
                                                                   Arm("student+fast-loop-int4-wo", "weight-only")]
    monkeypatch.setitem(sys.modules, "workbench.arms.distilled_llm", lm)


def test_catalogue_arms_one_baseline():
    arms, skipped = candidates("text-classification", ISA)
    assert sum(a.baseline for a in arms) == 1 and arms[0].name == "torch-fp32"
    assert "ov-int8-static" in [a.name for a in arms] and skipped == []


def test_distilled_students_join_only_when_their_training_fits(monkeypatch):
    _fake_distilled(monkeypatch, 300.0)
    arms, skipped = candidates("text-classification", ISA, budget=Budget(1000.0))
    assert [a.name for a in arms][-2:] == ["student-fp32", "student-int8"] and skipped == []
    arms, skipped = candidates("text-classification", ISA, budget=Budget(100.0))
    assert "student-fp32" not in [a.name for a in arms]
    assert len(skipped) == 1 and "distilled student: its training needs ~300 s" in skipped[0]
    # 300 s of a 500 s budget fits the clock but would leave too little to check and sweep any arm: left out
    arms, skipped = candidates("text-classification", ISA, budget=Budget(500.0))
    assert "student-fp32" not in [a.name for a in arms] and "more than 35% of the" in skipped[0]
    assert "--budget 858s" in skipped[0]


def test_a_causal_lm_takes_its_lm_student_through_the_decode_arms_when_it_fits(monkeypatch):
    _fake_distilled(monkeypatch, 300.0)
    arms, skipped = candidates("causal-lm", ISA, budget=Budget(5000.0))
    names = [a.name for a in arms]
    assert names[-2:] == ["student+hf-generate-fp32", "student+fast-loop-int4-wo"] and skipped == []
    assert "student-fp32" not in names and names[0] == "hf-generate-fp32" and sum(a.baseline for a in arms) == 1
    arms, skipped = candidates("causal-lm", ISA, budget=Budget(500.0))
    assert not any(a.name.startswith("student") for a in arms) and "its training needs ~300 s" in skipped[0]


def test_unknown_kind_and_device_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="text-classification or causal-lm"):
        candidates("text2text", ISA)
    with pytest.raises(ValueError, match=r"device 'tpu': use one of \('cpu', 'cuda'\)"):
        candidates("text-classification", ISA, device="tpu")


def test_cuda_takes_the_gpu_catalogues_and_leaves_the_cpu_students_out(monkeypatch):
    _fake_distilled(monkeypatch, 10.0)
    arms, skipped = candidates("text-classification", ISA, budget=Budget(1000.0), device="cuda")
    names = [a.name for a in arms]
    assert names[0] == "torch-fp32" and "torch-compile-fp16" in names and "ov-int8-static" not in names
    assert "student-fp32" not in names and "CPU catalogue's" in skipped[0]
    lm, _ = candidates("causal-lm", ISA, device="cuda")
    by_name = {a.name: a for a in lm}
    assert by_name["ort-int8-matmulnbits"].skip_reason == "the ORT arms run on CPU here (device cuda)"
    # llama.cpp: a CPU arm here, or not installed at all (its reason comes first then)
    assert any(why in by_name["llama-cpp-bf16"].skip_reason for why in ("llama.cpp arms run on CPU", "not installed"))
    assert by_name["fast-loop-bf16"].applies and sum(a.baseline for a in lm) == 1
    lm, skipped = candidates("causal-lm", ISA, budget=Budget(5000.0), device="cuda")
    assert not any(a.name.startswith("student") for a in lm) and "LM student trains on CPU" in skipped[0]
