"""benchmarks/llm_decode.py in small mode: every arm of the catalogue runs or says why not, the pick is checked on
quality of the timed weights (or flagged unchecked), and the last line is the headline JSON."""
import json

import pytest

pytestmark = pytest.mark.integration

HEADLINE = ("best_variant", "best_speedup_vs_hf", "selection_speedup_vs_hf", "fast_loop_speedup_vs_hf",
            "hf_static_compile_speedup_vs_hf", "best_ppl_increase_pct", "best_bandwidth_utilisation",
            "prefix_cache_ttft_ratio", "isa", "loadavg_1min", "pick")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """main() is a script entry: it sets torch's thread count for its process. Here it runs inside the test
    process, so the count comes back afterwards (later tests' runners take torch's count)."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("WORKBENCH_THREADS", "2")
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("llm_decode")


def test_small_run_prints_the_headline_json(bench, tmp_path, capsys):
    from workbench.arms.llm import BENCHMARK_ARMS

    # --no-compile: the static-cache loop eager (inductor takes minutes on 2 cores); the compiled path has its own tests
    result = bench.main(["--small", "--no-compile", "--out", str(tmp_path)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(HEADLINE) <= set(last) and last["best_variant"] == result["best_variant"]
    arms = {r["arm"]: r for r in last["arms"]}
    assert set(arms) == set(BENCHMARK_ARMS)
    assert arms["hf-generate-fp32"]["speedup"] == 1.0 and arms["hf-generate-fp32"]["baseline"]
    assert arms["hf-static-compile-fp32"]["status"] == "not available here"
    assert "--no-compile" in arms["hf-static-compile-fp32"]["reason"]
    for name, row in arms.items():
        if row["status"] != "measured":
            assert row["reason"], name   # a reason, never a silent gap
            continue
        # every figure from the timed requests themselves: 2 rounds = 2 requests, TTFT inside the request
        assert row["n_requests"] == 2 and row["output_tokens"] == 2 * 8 and row["tokens_per_s"] > 0, name
        assert 0 < row["ttft_ms_p50"] < row["e2e_ms_p50"] and row["bytes_per_token"] > 0
        assert row["metric"] == "top1_agreement_pct" and 0 <= row["quality"] <= 100
    for exact in ("fast-loop-fp32", "ort-fp32-kv"):   # same fp32 weights: HF's greedy tokens, full agreement
        assert arms[exact]["token_agreement_vs_hf"] == 1.0 and arms[exact]["quality"] == 100.0
    int4 = arms["fast-loop-int4-wo"]
    if int4["status"] == "measured":   # scored on its int4 weights: fewer bytes, a paired CI of the drop
        assert int4["weight_bytes_per_step"] < 0.3 * arms["hf-generate-fp32"]["weight_bytes_per_step"]
        low, high = int4["drop_ci_pts"]
        assert low <= int4["drop_pts"] <= high
    assert last["pick"] == "checked" and arms[last["best_variant"]]["eligible"]
    assert last["best_speedup_vs_hf"] is not None and last["selection_speedup_vs_hf"] is not None
    assert last["best_ppl_increase_pct"] is not None and last["prefix_cache_ttft_ratio"] > 0
    # MBU's peak: the read reference timed in the arms' own rounds (no row of its own), the best-of-10 beside it
    assert last["read_gb_per_s"] > 0 and last["read_gb_per_s_best"] > 0 and "median of" in last["read_measured"]


def test_skip_ppl_leaves_the_pick_unchecked_and_isolated_arms_run_in_their_own_processes(bench, tmp_path):
    result = bench.main(["--small", "--no-compile", "--skip-ppl", "--isolate", "--arms", "ort-fp32-kv",
                         "--out", str(tmp_path)])
    assert result["arms_ran_in"] == "one process each" and result["pick"] == "unchecked"
    assert result["best_ppl_increase_pct"] is None and "not measured" in result["pick_reason"]
    measured = {r["arm"] for r in result["arms"] if r["status"] == "measured"}
    assert measured == {"hf-generate-fp32", "ort-fp32-kv"}   # HF, the baseline, always runs
    for row in result["arms"]:   # request metrics sent back from each arm's own process, from its timed calls
        if row["status"] == "measured":
            assert row["n_requests"] == 2 and 0 < row["ttft_ms_p50"] < row["e2e_ms_p50"], row["arm"]
    with pytest.raises(ValueError, match="unknown LLM arm"):
        bench.main(["--small", "--arms", "ort-int3"])
