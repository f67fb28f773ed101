"""benchmarks/llm_decode.py in small mode: every arm runs or says why not, and the last line is the headline JSON."""
import json

import pytest

pytestmark = pytest.mark.integration  # starts benchmarks/llm_decode.py

HEADLINE = ("best_variant", "best_speedup_vs_hf", "fast_loop_speedup_vs_hf", "best_ppl_increase_pct",
            "best_bandwidth_utilisation", "prefix_cache_ttft_ratio")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """main() is a script entry: it sets WORKBENCH_THREADS and torch's thread count for its process. Here it runs
    inside the test process, so both come back afterwards (later tests' runners take torch's count)."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("WORKBENCH_THREADS", "2")   # recorded now, so teardown restores the original (or unsets it)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("llm_decode")


def test_small_run_prints_the_headline_json(bench, tmp_path, capsys):
    # --no-compile: the static-cache loop eager (inductor takes minutes on 2 cores); the compiled path has its own tests
    result = bench.main(["--small", "--no-compile", "--out", str(tmp_path)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(HEADLINE) <= set(last) and last["best_variant"] == result["best_variant"]
    arms = last["arms"]
    assert {"hf-generate-fp32", "fast-loop-fp32", "fast-loop-bf16", "torch-int8-wo", "torch-int4-wo", "ort-fp32-kv",
            "ort-int8-matmulnbits", "ort-int4-matmulnbits"} == set(arms)
    assert arms["hf-generate-fp32"]["speedup_vs_hf_b1"] == 1.0
    for name, row in arms.items():
        if "skipped" in row:
            assert "AMX" in row["skipped"] or "not available" in row["skipped"]   # a reason, never a silent gap
            continue
        assert row["tokens_per_s_b1"] > 0 and row["tokens_per_s_b8"] > 0 and row["bandwidth_utilisation_b1"] > 0
        hf = arms["hf-generate-fp32"]["tokens_per_s_b1"]
        assert row["speedup_vs_hf_b1"] == pytest.approx(row["tokens_per_s_b1"] / hf, rel=0.01)
        assert row["speedup_vs_hf_best_b1"] > 0 and row["tokens_per_s_best_b1"] >= row["tokens_per_s_b1"]
    # exact arms generate HF's greedy tokens; weight-only arms carry fewer bytes and a paired perplexity CI
    assert arms["ort-fp32-kv"]["token_agreement_vs_hf_b1"] == 1.0
    assert arms["fast-loop-fp32"]["token_agreement_vs_hf_b8"] == 1.0
    for name in ("torch-int4-wo", "ort-int4-matmulnbits"):
        assert arms[name]["weight_mb_per_step"] < 0.3 * arms["hf-generate-fp32"]["weight_mb_per_step"]
        low, high = arms[name]["ppl_increase_ci_pct"]
        assert low <= arms[name]["ppl_increase_pct"] <= high and abs(arms[name]["ppl_increase_pct"]) < 3
    best = arms[last["best_variant"]]
    assert last["best_speedup_vs_hf"] == best["speedup_vs_hf_b1"] and best["ppl_increase_pct"] <= 3
    assert last["prefix_cache"]["max_abs_logit_diff"] < 1e-3 and last["prefix_cache_ttft_ratio"] > 0
    prefix = last["prefix_cache"]
    rate_ratio = prefix["prompt_tokens_per_s_full"] / prefix["prompt_tokens_per_s_reused"]
    assert prefix["prefix_cache_saving_pct"] == pytest.approx(100 * (1 - rate_ratio), abs=0.5)
    kv = last["kv_cache"]
    assert set(kv["ppl_demo_lm"]) == {"kv-int8", "kv-int4"}
    budget = {(r["kv_cache"], r["context"]): r for r in kv["budget_4gib"]}
    assert budget[("int8", 2048)]["max_batch"] > 3 * budget[("fp32", 2048)]["max_batch"] > 0


def test_isolated_arms_run_in_their_own_processes_with_the_same_tokens(bench, tmp_path):
    result = bench.main(["--small", "--no-compile", "--skip-ppl", "--isolate", "--arms", "ort-fp32-kv",
                         "--out", str(tmp_path)])
    assert result["arms_ran_in"] == "one process each"
    arms = result["arms"]
    assert set(arms) == {"hf-generate-fp32", "ort-fp32-kv"}   # HF, the baseline, always runs
    assert all("own process" in row["notes"] for row in arms.values())
    assert arms["ort-fp32-kv"]["token_agreement_vs_hf_b1"] == 1.0 and arms["ort-fp32-kv"]["tokens_per_s_b8"] > 0
    with pytest.raises(SystemExit, match="unknown arm"):
        bench.main(["--small", "--arms", "ort-int3"])
