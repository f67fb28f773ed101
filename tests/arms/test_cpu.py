"""The CPU catalogue: which arms apply on which ISA, why, and how each is built (steps shared between arms)."""
import dataclasses

import pytest

from workbench.arms.cpu import StepChain, cpu_arms
from workbench.runtime.cpu import isa_summary

AVX2 = ["avx2", "fma"]
AVX512_VNNI = ["avx2", "fma", "avx512f", "avx512_vnni"]
AMX = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]
NAMES = ["torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "torch-bf16", "torch-compile-fp32",
         "torch-compile-bf16", "torch-compile-bf16-frozen", "torch-int8-pt2e-dynamic", "torch-int8-pt2e-static", "ov-fp32", "ov-bf16",
         "ov-int8-weights", "ov-int8-static"]


def _arms(flags, **kw):
    return {a.name: a for a in cpu_arms(isa_summary(flags), **kw)}


def test_avx2_only_int8_uses_avx2_preset_and_bf16_is_skipped():
    arms = _arms(AVX2)
    assert list(arms) == NAMES
    assert [a.name for a in arms.values() if a.baseline] == ["torch-fp32"] and arms["torch-fp32"].config is None
    assert arms["torch-int8-dynamic"].applies and "vpmaddubsw" in arms["torch-int8-dynamic"].reason
    ort = arms["ort-int8-dynamic"]
    assert ort.applies and ort.config.reduce_range and ort.config.per_channel   # the avx2 preset
    assert type(ort.steps[0]).__name__ == "ExportOnnxConfig" and ort.build.steps == ort.steps
    for name in ("torch-bf16", "torch-compile-bf16", "torch-compile-bf16-frozen", "ov-bf16"):
        assert not arms[name].applies and "no AMX/AVX512-BF16" in arms[name].skip_reason
        assert "emulated" in arms[name].reason
    assert arms["torch-compile-fp32"].applies and "AVX2" in arms["torch-compile-fp32"].notes


def test_avx512_vnni_int8_uses_vpdpbusd_and_8bit_weights():
    arms = _arms(AVX512_VNNI)
    assert arms["torch-int8-dynamic"].reason == "VNNI: int8 GEMMs use vpdpbusd"
    ort = arms["ort-int8-dynamic"]
    assert ort.applies and not ort.config.reduce_range and ort.config.per_channel
    assert not arms["torch-bf16"].applies and "emulated" in arms["torch-bf16"].reason
    assert "AVX-512" in arms["torch-compile-fp32"].reason


def test_amx_enables_bf16_arms():
    arms = _arms(AMX, calibration="calib.npz")
    assert all(a.applies for a in arms.values()), [a.name for a in arms.values() if not a.applies]
    assert arms["ov-bf16"].config.precision == "bf16" and "AMX-BF16" in arms["ov-bf16"].reason
    assert "AMX-BF16" in arms["torch-bf16"].reason and "AMX-INT8" in arms["torch-int8-dynamic"].reason
    assert [type(c).__name__ for c in arms["torch-compile-bf16"].steps] == ["CpuPrecisionConfig", "CompileConfig"]
    assert arms["torch-compile-bf16-frozen"].config.freezing and not arms["torch-compile-bf16"].config.freezing
    assert _arms(["avx2", "avx512f", "avx512_bf16"])["torch-bf16"].applies   # AVX512-BF16 without AMX


def test_no_avx2_skips_int8_and_compile():
    arms = _arms([])
    assert arms["torch-fp32"].applies
    assert not any(arms[n].applies for n in ("torch-int8-dynamic", "ort-int8-dynamic", "torch-compile-fp32"))


def test_static_int8_arms_need_a_calibration_set_and_carry_it():
    arms = _arms(AVX512_VNNI)
    for name in ("torch-int8-pt2e-static", "ov-int8-static"):
        assert not arms[name].applies and "needs calibration data" in arms[name].reason and arms[name].steps == ()
    arms = _arms(AVX512_VNNI, calibration="c.npz")
    assert arms["ov-int8-static"].applies and arms["ov-int8-static"].config.calibration == "c.npz"
    assert [type(c).__name__ for c in arms["ov-int8-static"].steps] == ["ExportOnnxConfig", "OpenVinoConfig"]
    pt2e = arms["torch-int8-pt2e-static"].config
    assert pt2e.mode == "static" and pt2e.calibration == "c.npz" and not pt2e.reduce_range   # VNNI: full 8-bit range
    assert _arms(AVX2)["torch-int8-pt2e-dynamic"].config.reduce_range
    assert not arms["ov-bf16"].applies and "emulated" in arms["ov-bf16"].reason


def test_extended_adds_the_autotune_and_ort_study_arms_after_the_isa_arms():
    arms = _arms(AVX512_VNNI, extended=True)
    assert list(arms)[:len(NAMES)] == NAMES
    assert list(arms)[len(NAMES):] == ["torch-compile-bf16-autotune", "ov-bf16-streams", "ov-fp32-streams",
                                       "ov-int8-static-streams", "ort-fp32", "ort-fp32-o3",
                                       "ort-int8-dynamic-o3", "ort-int8-static-minmax", "ort-int8-static-entropy",
                                       "ort-int8-static-percentile"]
    assert [type(c).__name__ for c in arms["ort-int8-dynamic-o3"].steps] == ["ExportOnnxConfig", "OptimizeConfig",
                                                                          "QuantizeDynamicConfig"]
    assert not _arms([], extended=True)["ort-int8-static-minmax"].applies
    autotune = _arms(AMX, extended=True)["torch-compile-bf16-autotune"]
    assert autotune.applies and autotune.config.freezing and autotune.config.mode == "max-autotune-no-cudagraphs"
    assert "emulated" in arms["torch-compile-bf16-autotune"].reason   # VNNI without bf16 hardware
    streams = _arms(AMX, extended=True)["ov-bf16-streams"]
    assert streams.applies and streams.config.streams == 2 and streams.config.precision == "bf16"
    avx2 = _arms(AVX2, calibration="c.npz", extended=True)   # the throughput split for the precisions AVX2 runs
    assert avx2["ov-fp32-streams"].applies and avx2["ov-fp32-streams"].config.streams == 2
    int8 = avx2["ov-int8-static-streams"].config
    assert int8.streams == 2 and int8.precision == "int8-static" and int8.calibration == "c.npz"
    uncalibrated = arms["ov-int8-static-streams"]
    assert not uncalibrated.applies and "needs calibration data" in uncalibrated.reason


def test_each_compile_arm_names_its_eager_twin_in_the_same_catalogue():
    arms = _arms(AMX, calibration="c.npz", extended=True)
    twins = {n: a.twin for n, a in arms.items() if a.twin}
    assert twins["torch-compile-fp32"] == "torch-fp32" and twins["torch-compile-bf16-frozen"] == "torch-bf16"
    assert twins["torch-int8-pt2e-dynamic"] == "torch-int8-dynamic"
    for name, twin in twins.items():   # the twin runs eager: it compiles nothing and has no twin itself
        assert arms[name].kind == "compile" and arms[twin].kind != "compile" and arms[twin].twin is None


def test_a_missing_library_makes_the_arm_not_available_here(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    arms = _arms(AMX)
    for name in ("ov-fp32", "ov-bf16", "ov-int8-weights"):
        assert not arms[name].applies and arms[name].reason == ("not available here: openvino is not installed "
                                                                "here: pip install openvino")
    assert arms["torch-int8-pt2e-dynamic"].applies


def test_step_chains_share_their_common_prefix_and_write_under_out_dir(step_registry, tmp_path):
    from workbench.arms.base import ArmContext
    from workbench.core import Variant

    @dataclasses.dataclass(frozen=True)
    class Export:
        out_dir: str | None = None

    @dataclasses.dataclass(frozen=True)
    class Runtime:
        precision: str = "fp32"

    made = []

    def export(v, c):
        made.append(c.out_dir)
        return dataclasses.replace(v, name=f"{v.name}+onnx")

    step_registry("test_export", Export, export)
    step_registry("test_runtime", Runtime, lambda v, c: dataclasses.replace(v, name=f"{v.name}+{c.precision}"))
    base = Variant(name="fp32", task="t", backend="torch", device="cpu", precision="fp32", runner=lambda x: x * 2)
    ctx = ArmContext(base=base, inputs=3, options={"out_dir": str(tmp_path)})
    a = StepChain((Export(), Runtime("fp32")))(ctx)
    b = StepChain((Export(), Runtime("bf16")))(ctx)
    assert made == [str(tmp_path)]                     # one export for both arms
    assert a.variant.name == "fp32+onnx+fp32" and b.variant.name == "fp32+onnx+bf16" and a.call() == 6
    assert a.quality is None                           # no task: no quality function


def test_quality_is_measured_on_the_very_variant_that_is_timed():
    from workbench.arms.cpu import built_variant
    from workbench.arms.base import ArmContext

    seen = []

    class Task:
        def evaluate(self, variant, split="test", limit=None):
            seen.append((variant, split, limit))
            if split != "test":
                raise KeyError(split)
            return "q"

    variant = lambda x: x  # noqa: E731
    built = built_variant(variant, ArmContext(task=Task(), options={"eval_limit": 5, "report_split": "test"}))
    assert built.quality() == "q" and built.report_quality() == "q"
    assert seen == [(variant, "validation", 5), (variant, "test", 5), (variant, "test", 5)]   # no validation: test
    with pytest.raises(KeyError):
        built_variant(variant, ArmContext(task=Task(), options={"split": "test-x"})).quality()   # no silent fallback
