"""End to end on the real engine: tiny Llama -> int4 compressed-tensors bundle -> vLLM on loopback -> served quality
against the workbench's own compute on the same weights -> AIPerf and the own client on one Poisson schedule -> one
load-engine row -> server stopped. About a minute here, most of it vLLM's start. Where this machine's vLLM CPU build
has no int4 kernel (its AVX2 build), the int4 bundle is refused before any server starts and int8 is served instead."""
from __future__ import annotations

import subprocess

import pytest

from workbench.core import apply
from workbench.serving.engine import envs
from workbench.steps.weight_only import WeightOnlyConfig

pytestmark = pytest.mark.integration


def _engine_processes(bundle) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "vllm.entrypoints" in line and str(bundle) in line]


def test_int4_bundle_served_by_vllm_matches_the_workbench_and_is_measured(tiny_llama_task, tmp_path):
    ok, why = envs.available()
    if not ok:
        pytest.skip(why)
    import torch

    from workbench.results import ResultsTable
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.load import sweep_engine
    from workbench.serving.engine.quality import served_quality
    from workbench.serving.engine.server import split_cpus, start_server
    from workbench.serving.engine.support import CPU_KERNELS, EngineUnsupported, engine_kernels

    int4 = apply(tiny_llama_task.baseline(), WeightOnlyConfig(bits=4, group_size=32))
    bundle = export_engine(int4, tiny_llama_task, to=tmp_path / "bundle")
    device, ops = engine_kernels()
    precision = "int4" if device != "cpu" or CPU_KERNELS["int4"] in ops else "int8"
    if precision == "int8":   # refused with the reason before a server starts, then int8 (W8A8) served instead
        with pytest.raises(EngineUnsupported, match=r"no int4 kernel \(cpu_gemm_wna16"):
            start_server(bundle, tmp_path / "refused.log")
        assert not (tmp_path / "refused.log").exists()
        int8 = apply(tiny_llama_task.baseline(), WeightOnlyConfig(bits=8))
        bundle = export_engine(int8, tiny_llama_task, to=tmp_path / "bundle-int8")
    table = ResultsTable(tmp_path / "study" / "results.jsonl")
    torch.manual_seed(1)
    blocks = torch.randint(4, 4096, (4, 48))
    # One engine start (~40 s here: three processes each import vLLM) serves both checks.
    with start_server(bundle, tmp_path / "vllm.log", cpus=split_cpus()[0]) as server:
        q = served_quality(server.url, bundle / "checkpoint", blocks, n_prompts=4, prompt_len=16, new_tokens=16)
        result = sweep_engine(bundle, slo_ttft_ms=5000, slo_itl_ms=1000, rates=[2.0], new_tokens=8, prompt_tokens=32,
                              n_requests=8, table=table, server=server)
    assert not _engine_processes(bundle), "vLLM left running"

    # Served quality: the engine's int4 (int8) kernels against the workbench's fp32 compute on the same weights
    # (dequantised from the checkpoint): near-ties may flip late tokens, not most.
    assert q["greedy_sequences"] == 4 and len(q["greedy_first_divergence"]) == 4
    assert len(q["greedy_divergence_logprob_gaps"]) == 4 - q["greedy_exact_sequences"]
    assert all(g >= -1e-3 for g in q["greedy_divergence_logprob_gaps"])   # the own pick is its own argmax
    if precision == "int4":
        assert q["greedy_token_agreement"] >= 0.5, q
    else:   # W8A8 also quantises activations: on these near-uniform random logits (ppl ~ vocab) every near-tie flips,
        assert max(q["greedy_divergence_logprob_gaps"], default=0) < 0.1, q   # but each divergence is one (< 0.1 nat)
    assert abs(q["served_ppl_diff_pct"]) < 2.0, q

    (row,) = result.rows
    assert row["scenario"] == "load-engine" and row["precision"] == precision and row["workload"] == "custom"
    assert (row["workload_prompt_tokens"], row["workload_new_tokens"], row["max_new_tokens"]) == (32, 8, 8)
    assert row["ttft_samples"] == 8 and row.get("errors") in (None, 0) and row["own_errors"] == 0
    assert 0 < row["ttft_ms_p50"] < row["e2e_ms_p50"] and row["itl_ms_p50"] > 0 and row["output_tokens_per_s"] > 0
    assert row["osl"] == 8   # the engine's token count: random weights' text does not re-tokenise to 8 tokens
    assert row["own_ttft_ms_p50"] > 0 and row["aiperf_vs_own_ttft_p50_diff_pct"] is not None
    assert row["usd_per_1m_output_tokens"] > 0 and 0 < row["aiperf_cpu_share"] <= 1.5
    assert row["meets_slo"] and result.goodput_per_s == 2.0
    assert table.rows and table.rows[-1]["scenario"] == "load-engine"
