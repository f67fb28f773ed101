from workbench.measure.isa import isa_summary, native_bf16, native_int8

AVX2 = ["avx2", "fma"]
AMX = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]


def test_isa_summary_reads_flags():
    assert isa_summary(AVX2) == {"avx2": True, "avx512": False, "avx512_bf16": False, "vnni": False,
                                 "amx_bf16": False, "amx_int8": False}
    assert isa_summary(["avx_vnni", "avx2"])["vnni"]
    assert all(isa_summary(AMX).values())
    assert set(isa_summary()) == {"avx2", "avx512", "avx512_bf16", "vnni", "amx_bf16", "amx_int8"}


def test_native_paths_name_the_instruction_or_why_not():
    assert native_bf16(isa_summary(AMX)) == (True, "AMX-BF16: bf16 GEMMs run on AMX tiles (tdpbf16ps)")
    assert native_bf16(isa_summary(["avx512f", "avx512_bf16"]))[1].startswith("AVX512-BF16")
    ok, why = native_bf16(isa_summary(AVX2))
    assert not ok and "emulated" in why
    assert native_int8(isa_summary(AMX))[1].startswith("AMX-INT8")
    assert native_int8(isa_summary(["avx512_vnni"])) == (True, "VNNI: int8 GEMMs use vpdpbusd")
    assert "vpmaddubsw" in native_int8(isa_summary(AVX2))[1] and not native_int8(isa_summary([]))[0]


def test_fingerprint_carries_the_isa_summary_without_changing_its_id():
    from workbench.measure.environment import environment_fingerprint, environment_id

    env = environment_fingerprint()
    assert env["isa_summary"] == isa_summary(env["cpu_isa"])
    assert environment_id({k: v for k, v in env.items() if k != "isa_summary"}) == env["environment_id"]


def test_precision_time_shares_group_kernels_of_every_runtime():
    from workbench.measure.isa import precision_time_shares, won_because

    profile = {"FullyConnected:brgemm_avx512_amx_I8": 0.5, "MatMulInteger": 0.1, "onednn::qlinear_pointwise": 0.1,
               "DynamicQuantizeLinear": 0.05, "FullyConnected:brgemm_avx512_amx_bf16": 0.05, "MVN:jit_avx512_f32": 0.2}
    assert precision_time_shares(profile) == {"int8": 0.7, "quant glue": 0.05, "bf16": 0.05, "float": 0.2}
    text = won_because("ov-int8-static", {"batch 8": 5.1, "batch 1": 3.2}, {"cpu": "Xeon", "avx512": True,
                                                                            "amx_bf16": False},
                       {"int8": 0.7, "float": 0.2, "bf16": 0.01}, {"ov-bf16": "no AMX"})
    assert text.startswith("ov-int8-static won at 5.1x (batch 8) / 3.2x (batch 1)") and "(avx512)" in text
    assert "70% of kernel time in int8" in text and "bf16" not in text.split(";")[1] and "not run: ov-bf16" in text


def test_measure_isa_builds_nothing():
    """ISA facts sit below the steps: this module must not import them (measuring builds no variants)."""
    import ast
    from pathlib import Path

    import workbench.measure.isa as isa

    tree = ast.parse(Path(isa.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m.startswith("workbench.steps") or m.startswith("workbench.arms")) for m in imported)
