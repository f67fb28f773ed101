from workbench.measure.isa import applicable_arms, isa_summary

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
                          "torch-compile-fp32", "torch-compile-bf16"]
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
    arms = _arms(AMX)
    assert all(a.applies for a in arms.values())
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
