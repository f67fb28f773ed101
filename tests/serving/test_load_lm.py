"""`workbench load` on a causal-LM bundle: the bundle's graph streamed from a real Triton server, one
``load-stream`` row per rate with TTFT / TPOT / ITL, goodput judged on TTFT; --search and a KV-cache graph are
refused with the reason."""
import json
import shutil

import pytest

from workbench.cli import main

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)

NEW_TOKENS = 4


@pytest.fixture(scope="module")
def lm_bundle(tmp_path_factory):
    """A tiny bundle of the demo causal LM (full-sequence graph), built with a short validation grid and sweep."""
    from workbench.serving.load.demo_bundles import causal_lm_bundle

    return causal_lm_bundle(tmp_path_factory.mktemp("lm-bundle"), sweep_batch_sizes=(1, 2), seq_len=12, threads=1,
                            grid=((1, 2, 3), (8, 12, 16)))


@pytest.mark.integration
def test_lm_bundle_is_streamed_with_ttft_rows(lm_bundle, tmp_path, capsys):
    from workbench.serving.bundle.verify import load_manifest

    code = main(["load", str(lm_bundle), "--slo-ms", "5000", "--rates", "2", "--requests", "12",
                 "--new-tokens", str(NEW_TOKENS), "--warmup-s", "0.5", "--study", "lm"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "artifacts" / "lm" / "results.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in rows] == ["load-stream"]
    row = rows[0]
    print("\n", out)
    assert row["variant_id"] == load_manifest(lm_bundle)["served"]["variant_id"] and row["bundle"] == str(lm_bundle)
    assert row["offered_rate_per_s"] == 2 and row["max_new_tokens"] == NEW_TOKENS and row["slo_metric"] == "ttft"
    assert row["errors"] == 0 and row["n_ok"] == row["n_measured"] >= 8 and row["tokens_mean"] == NEW_TOKENS
    assert row["ttft_p50_ms"] > 0 and row["tpot_p50_ms"] > 0 and row["itl_p50_n"] == row["n_ok"] * (NEW_TOKENS - 1)
    assert row["ttft_p99_ms"] is None and "ttft_p99_note" in row   # 12 requests: too few for a p99
    assert 0 < row["sync_latency_p50_ms"] < 5000 and row["capacity_per_s"] > 0
    assert row["slo_attainment"] == 1.0    # 4 tokens of a tiny LM at 2/s: every first token well within 5 s
    # ~11 requests counted: too few for a p99 (200) or a p90 (20), so the goodput is judged, and named, at TTFT p50
    assert row["slo_percentile"] == "p50" and "judged at TTFT p50, not the p99 asked for" in out
    assert row["meets_slo"] == (row["slo_outcome"] == "pass") and row["client_cpu_share"] is not None
    assert "TTFT p50" in out and "TPOT p99" in out
    assert ("goodput >= 2.0/s (highest rate tried) at TTFT p50" in out) == (row["slo_outcome"] == "pass")


def test_search_on_an_lm_bundle_is_refused(lm_bundle, capsys):
    assert main(["load", str(lm_bundle), "--slo-ms", "50", "--search"]) == 2
    assert "the serving-config search covers request/response bundles" in capsys.readouterr().err


def test_kv_cache_graph_is_refused_with_the_fix(lm_bundle, tmp_path, capsys):
    bundle = shutil.copytree(lm_bundle, tmp_path / "kv")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["inputs"].append({"name": "past_key_values.0.key", "data_type": "TYPE_FP32", "dims": [4, -1, 16]})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert main(["load", str(bundle), "--slo-ms", "50"]) == 2
    err = capsys.readouterr().err
    assert "past-KV inputs (past_key_values.0.key" in err and "with_past=False" in err


def test_slo_percentile_is_what_the_samples_support():
    from workbench.serving.load.lm import slo_percentile

    assert slo_percentile(250, 0.99) == ("p99", 0.99)
    assert slo_percentile(199, 0.99) == ("p95", 0.95) and slo_percentile(39, 0.99) == ("p90", 0.90)
    assert slo_percentile(10, 0.99) == ("p50", 0.5) and slo_percentile(100, 0.9) == ("p90", 0.9)


def test_lm_graph_reads_the_tensor_specs():
    from workbench.serving.load.lm import lm_graph

    ids = [{"name": "input_ids", "dims": [-1]}, {"name": "attention_mask", "dims": [-1]}]
    assert lm_graph({"task": "text-classification", "inputs": ids, "outputs": [{"name": "logits", "dims": [2]}]}) \
        is None
    assert lm_graph({"task": "my-gpt2", "inputs": ids, "outputs": [{"name": "logits", "dims": [-1, 50257]}]}) == "full"
    past = ids + [{"name": "past_key_values.0.value", "dims": [4, -1, 16]}]
    assert lm_graph({"task": "causal-lm", "inputs": past, "outputs": [{"name": "logits", "dims": [-1, 9]}]}) == "kv"
