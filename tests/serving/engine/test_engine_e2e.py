"""End to end on the real engine: tiny Llama -> int4 compressed-tensors bundle -> vLLM on loopback -> AIPerf and the
own client on one Poisson schedule -> one load-engine row -> server stopped. ~2-3 minutes (vLLM start-up ~90 s)."""
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


def test_int4_bundle_served_by_vllm_and_measured(tiny_llama_task, tmp_path):
    ok, why = envs.available()
    if not ok:
        pytest.skip(why)
    from workbench.results import ResultsTable
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.load import sweep_engine

    variant = apply(tiny_llama_task.baseline(), WeightOnlyConfig(bits=4, group_size=32))
    bundle = export_engine(variant, tiny_llama_task, to=tmp_path / "bundle")
    table = ResultsTable(tmp_path / "study" / "results.jsonl")
    result = sweep_engine(bundle, slo_ttft_ms=5000, slo_itl_ms=1000, rates=[2.0], new_tokens=8, prompt_tokens=32,
                          n_requests=8, table=table)
    (row,) = result.rows
    assert row["scenario"] == "load-engine" and row["precision"] == "int4" and row["workload"] == "custom"
    assert (row["workload_prompt_tokens"], row["workload_new_tokens"], row["max_new_tokens"]) == (32, 8, 8)
    assert row["ttft_samples"] == 8 and row.get("errors") in (None, 0) and row["own_errors"] == 0
    assert 0 < row["ttft_ms_p50"] < row["e2e_ms_p50"] and row["itl_ms_p50"] > 0 and row["output_tokens_per_s"] > 0
    assert row["own_ttft_ms_p50"] > 0 and row["aiperf_vs_own_ttft_p50_diff_pct"] is not None
    assert row["usd_per_1m_output_tokens"] > 0 and 0 < row["aiperf_cpu_share"] <= 1.5
    assert row["meets_slo"] and result.goodput_per_s == 2.0
    assert table.rows and table.rows[-1]["scenario"] == "load-engine"
    assert not _engine_processes(bundle), "vLLM left running"
