from workbench.measure.isa import applicable_arms
from workbench.runtime.cpu import isa_summary

AVX2 = ["avx2", "fma"]
AVX512_VNNI = ["avx2", "fma", "avx512f", "avx512_vnni"]
AMX = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]


def _arms(flags):
    return {a.name: a for a in applicable_arms(isa_summary(flags))}


def test_isa_summary_reads_flags():
    assert isa_summary(AVX2) == {"avx2": True, "avx512": False, "avx512_bf16": False, "vnni": False,
                                 "amx_bf16": False, "amx_int8": False}
    assert isa_summary(["avx_vnni", "avx2"])["vnni"]
    assert all(isa_summary(AMX).values())
    assert set(isa_summary()) == {"avx2", "avx512", "avx512_bf16", "vnni", "amx_bf16", "amx_int8"}


def test_avx2_only_int8_uses_avx2_preset_and_bf16_is_skipped():
    arms = _arms(AVX2)
    assert list(arms) == ["torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "torch-bf16",
                          "torch-compile-fp32", "torch-compile-bf16", "torch-int8-pt2e-dynamic",
                          "torch-int8-pt2e-static", "ov-fp32", "ov-bf16", "ov-int8-weights", "ov-int8-static"]
    assert arms["torch-fp32"].applies and arms["torch-fp32"].config is None
    assert arms["torch-int8-dynamic"].applies and "vpmaddubsw" in arms["torch-int8-dynamic"].reason
    ort = arms["ort-int8-dynamic"]
    assert ort.applies and ort.config.reduce_range and ort.config.per_channel   # the avx2 preset
    assert type(ort.steps[0]).__name__ == "ExportOnnxConfig"
    for name in ("torch-bf16", "torch-compile-bf16"):
        assert not arms[name].applies and "no AMX/AVX512-BF16" in arms[name].reason and "emulated" in arms[name].reason
    assert arms["torch-compile-fp32"].applies and "AVX2" in arms["torch-compile-fp32"].reason


def test_avx512_vnni_int8_uses_vpdpbusd_and_8bit_weights():
    arms = _arms(AVX512_VNNI)
    assert arms["torch-int8-dynamic"].reason == "VNNI: int8 GEMMs use vpdpbusd"
    ort = arms["ort-int8-dynamic"]
    assert ort.applies and not ort.config.reduce_range and ort.config.per_channel
    assert not arms["torch-bf16"].applies and "emulated" in arms["torch-bf16"].reason
    assert "AVX-512" in arms["torch-compile-fp32"].reason


def test_amx_enables_bf16_arms():
    arms = {a.name: a for a in applicable_arms(isa_summary(AMX), calibration="calib.npz")}
    assert all(a.applies for a in arms.values()), [a.name for a in arms.values() if not a.applies]
    assert arms["ov-bf16"].config.precision == "bf16" and "AMX-BF16" in arms["ov-bf16"].reason
    assert "AMX-BF16" in arms["torch-bf16"].reason and "AMX-INT8" in arms["torch-int8-dynamic"].reason
    assert [type(c).__name__ for c in arms["torch-compile-bf16"].steps] == ["CpuPrecisionConfig", "CompileConfig"]
    assert _arms(["avx2", "avx512f", "avx512_bf16"])["torch-bf16"].applies   # AVX512-BF16 without AMX


def test_no_avx2_skips_int8_and_compile():
    arms = _arms([])
    assert arms["torch-fp32"].applies
    assert not any(arms[n].applies for n in ("torch-int8-dynamic", "ort-int8-dynamic", "torch-compile-fp32"))


def test_fingerprint_carries_the_isa_summary_without_changing_its_id():
    from workbench.measure.environment import environment_fingerprint, environment_id

    env = environment_fingerprint()
    assert env["isa_summary"] == isa_summary(env["cpu_isa"])
    assert environment_id({k: v for k, v in env.items() if k != "isa_summary"}) == env["environment_id"]


def test_static_int8_arms_need_a_calibration_set_and_carry_it():
    arms = _arms(AVX512_VNNI)
    for name in ("torch-int8-pt2e-static", "ov-int8-static"):
        assert not arms[name].applies and "needs calibration data" in arms[name].reason and arms[name].steps == ()
    arms = {a.name: a for a in applicable_arms(isa_summary(AVX512_VNNI), calibration="c.npz")}
    assert arms["ov-int8-static"].applies and arms["ov-int8-static"].config.calibration == "c.npz"
    assert [type(c).__name__ for c in arms["ov-int8-static"].steps] == ["ExportOnnxConfig", "OpenVinoConfig"]
    pt2e = arms["torch-int8-pt2e-static"].config
    assert pt2e.mode == "static" and pt2e.calibration == "c.npz" and not pt2e.reduce_range   # VNNI: full 8-bit range
    assert {a.name: a for a in applicable_arms(isa_summary(AVX2))}["torch-int8-pt2e-dynamic"].config.reduce_range
    assert not arms["ov-bf16"].applies and "emulated" in arms["ov-bf16"].reason


def test_a_missing_library_makes_the_arm_not_available_here(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    arms = _arms(AMX)
    for name in ("ov-fp32", "ov-bf16", "ov-int8-weights"):
        assert not arms[name].applies and arms[name].reason == ("not available here: openvino is not installed "
                                                                "here: pip install openvino")
    assert arms["torch-int8-pt2e-dynamic"].applies


def test_precision_time_shares_group_kernels_of_every_runtime():
    from workbench.measure.isa import precision_time_shares, won_because

    profile = {"FullyConnected:brgemm_avx512_amx_I8": 0.5, "MatMulInteger": 0.1, "onednn::qlinear_pointwise": 0.1,
               "DynamicQuantizeLinear": 0.05, "FullyConnected:brgemm_avx512_amx_bf16": 0.05, "MVN:jit_avx512_f32": 0.2}
    assert precision_time_shares(profile) == {"int8": 0.7, "quant glue": 0.05, "bf16": 0.05, "float": 0.2}
    text = won_because("ov-int8-static", {"speedup_b8": 5.1, "speedup_b1": 3.2}, {"cpu": "Xeon", "avx512": True,
                                                                                  "amx_bf16": False},
                       {"int8": 0.7, "float": 0.2, "bf16": 0.01}, {"ov-bf16": "no AMX"})
    assert text.startswith("ov-int8-static won at 5.1x (batch 8) / 3.2x (batch 1)") and "(avx512)" in text
    assert "70% of kernel time in int8" in text and "bf16" not in text.split(";")[1] and "not run: ov-bf16" in text
