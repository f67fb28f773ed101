"""The engine checkpoint measured in-process: loaded back with the workbench's kernels, timed, fed to the predictor."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from workbench.core import apply
from workbench.serving.engine.engine_args import EngineArgs
from workbench.serving.engine.export import export_engine
from workbench.serving.engine.inprocess import checkpoint_model, checkpoint_step_times, predict_candidate
from workbench.serving.engine.workloads import Workload
from workbench.steps.weight_only import WeightOnlyConfig

IDS = torch.arange(1, 17).view(1, 16)


@pytest.fixture(scope="module")
def bundles(tiny_llama_task, tmp_path_factory):
    base = tiny_llama_task.baseline()
    out = tmp_path_factory.mktemp("inprocess")
    made = {"bf16": (base, export_engine(base, tiny_llama_task, to=out / "bf16"))}
    for name, cfg in (("int8", WeightOnlyConfig.int8()), ("int4", WeightOnlyConfig(bits=4, group_size=32))):
        v = apply(base, cfg)
        made[name] = (v, export_engine(v, tiny_llama_task, to=out / name))
    return made


def _logits(model):
    with torch.inference_mode():
        return model(input_ids=IDS).logits.float()


def test_bf16_checkpoint_is_the_bf16_model(bundles):
    variant, bundle = bundles["bf16"]
    model, precision = checkpoint_model(bundle / "checkpoint")
    assert precision == "bf16" and next(model.parameters()).dtype == torch.bfloat16
    ref = _logits(variant.model.to(torch.bfloat16))
    assert torch.allclose(_logits(model), ref, atol=1e-2)


@pytest.mark.parametrize("name, bits, tol", [("int8", 8, 0.05), ("int4", 4, 0.4)])
def test_quantised_checkpoint_runs_the_workbench_kernel_of_its_width(bundles, name, bits, tol):
    variant, bundle = bundles[name]
    model, precision = checkpoint_model(bundle / "checkpoint")
    assert precision == name and model.weight_only["bits"] == bits
    assert model.weight_only["group_size"] == (32 if bits == 4 else None)     # the checkpoint's groups
    ours, ref = _logits(model), _logits(variant.model)
    # the variant's weights up to the export's re-rounding (int8: ~0.7% of the logits' spread here; int4, rounded
    # three times (asymmetric, symmetric for vLLM, asymmetric again): ~22%); a misread layout gives > 100%
    assert float((ours - ref).norm() / (ref - ref.mean()).norm()) < tol


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        checkpoint_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "quantization_config": {"quant_method": "gptq"}}')
    with pytest.raises(ValueError, match="compressed-tensors"):
        checkpoint_model(tmp_path)


def test_step_times_on_the_engine_cores_restore_threads_and_affinity(bundles):
    threads, cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    times, precision = checkpoint_step_times(bundles["int8"][1] / "checkpoint", Workload("t", 16, 4), 3,
                                             cpus=sorted(cpus)[:1], seconds_per_batch=0.01)
    assert precision == "int8" and set(times.tpot_s) == {1, 2, 3} and times.threads == 1
    assert times.prompt_tokens == 16 and times.prefill_s > 0
    assert torch.get_num_threads() == threads and os.sched_getaffinity(0) == cpus


def test_predict_candidate_reports_the_error_against_the_served_goodput(bundles):
    cand = SimpleNamespace(label="bf16-x", stage="default", bundle=bundles["bf16"][1], goodput_per_s=2.0,
                           args=EngineArgs(max_num_seqs=2), start_rate=1.0, min_requests=8, halvings=2,
                           idle={"ttft_ms_p50": 40.0, "itl_ms_p50": 8.0})
    result = SimpleNamespace(workload=Workload("t", 16, 4), slo_ttft_ms=2000.0, slo_itl_ms=1000.0, attainment=0.99,
                             point_s=2.0, max_points=3)
    out = predict_candidate(cand, result, seconds_per_batch=0.01)
    assert out["label"] == "bf16-x" and out["start_rate_per_s"] == 1.0
    assert set(out["step_times"]["tpot_ms"]) == {"1", "2"} and out["step_times"]["prefill_ms"] > 0
    assert 2 <= len(out["points"]) <= 3 and out["points"][0]["offered_rate_per_s"] <= 1.0
    assert all(p["n_requests"] == max(8, round(p["offered_rate_per_s"] * 2.0)) for p in out["points"])
    good = out["predicted_goodput_per_s"]
    # a tiny model under a 2 s / 1 s SLO passes every rung climbed: the climb's top rung, and its error vs 2.0/s
    assert good == max(p["offered_rate_per_s"] for p in out["points"])
    assert out["predicted_vs_served_goodput_error_pct"] == round(100 * (good - 2.0) / 2.0, 1)
    assert out["predicted_goodput_bisect_per_s"] >= good
    # the continuous limit with every step time 10% slower, then 10% faster: a band around the figure
    slower, faster = out["predicted_goodput_bisect_band_per_s"]
    assert out["step_time_band_pct"] == 10 and slower <= out["predicted_goodput_bisect_per_s"] <= faster
    # its engine was measured idle: the prediction is calibrated to that point (prefill = idle TTFT, batch-1 step =
    # idle ITL), the in-process times and the uncalibrated prediction kept beside it
    assert out["calibrated_to_served_idle"] and out["step_times"]["prefill_ms"] == 40.0
    assert out["step_times"]["tpot_ms"]["1"] == pytest.approx(8.0, abs=1e-3)
    raw = out["step_times_inprocess"]
    assert out["inprocess_over_served_idle_ttft"] == pytest.approx(raw["prefill_ms"] / 40.0, abs=1e-3)
    assert out["inprocess_over_served_idle_itl"] == pytest.approx(raw["tpot_ms"]["1"] / 8.0, abs=1e-3)
    assert out["predicted_goodput_uncalibrated_per_s"] is not None
    assert out["predicted_uncalibrated_vs_served_goodput_error_pct"] == round(
        100 * (out["predicted_goodput_uncalibrated_per_s"] - 2.0) / 2.0, 1)
    assert not out["calibrated_to_served_burst"] and "served_burst_itl_ms_p50" not in out
    # a burst on its engine: the step at that batch is the burst's ITL, and the in-process ratio is reported
    burst = predict_candidate(SimpleNamespace(**{**vars(cand), "idle": {**cand.idle, "burst_size": 2,
                                                                         "burst_itl_ms_p50": 12.0}}),
                              result, seconds_per_batch=0.01)
    assert burst["calibrated_to_served_burst"] and burst["served_burst_itl_ms_p50"] == 12.0
    assert burst["step_times"]["tpot_ms"]["2"] == pytest.approx(12.0, abs=1e-3)
    assert burst["inprocess_over_served_burst_itl"] == pytest.approx(
        burst["step_times_inprocess"]["tpot_ms"]["2"] / 12.0, abs=1e-3)
    # without an idle point the in-process times are the prediction, and it says so
    bare = predict_candidate(SimpleNamespace(**{**vars(cand), "idle": None}), result, seconds_per_batch=0.01)
    assert not bare["calibrated_to_served_idle"] and "served_idle_ttft_ms_p50" not in bare
    assert bare["predicted_goodput_per_s"] == bare["predicted_goodput_uncalibrated_per_s"]


def test_predict_search_measures_the_winner_and_says_why_the_default_is_absent(bundles):
    from workbench.serving.engine.inprocess import predict_search
    from workbench.serving.engine.search import point_requests

    climbed = SimpleNamespace(label="int8-x", stage="confirm", bundle=bundles["int8"][1], goodput_per_s=1.0,
                              args=EngineArgs(max_num_seqs=1), start_rate=0.5, min_requests=100, halvings=4, rows=[{}],
                              error=None,
                              idle={"ttft_ms_p50": 30.0, "itl_ms_p50": 6.0})
    failed = SimpleNamespace(label="bf16-d", stage="default", bundle=bundles["bf16"][1], goodput_per_s=None,
                             args=EngineArgs(), start_rate=None, min_requests=8, halvings=2, rows=[],
                             error="RuntimeError: engine died", idle=None)
    result = SimpleNamespace(workload=Workload("t", 16, 4), slo_ttft_ms=2000.0, slo_itl_ms=1000.0, attainment=0.99,
                             point_s=2.0, max_points=2, confirmed=climbed, default=failed)
    said = []
    out = predict_search(result, seconds_per_batch=0.01, progress=said.append)
    assert out["winner"]["precision_inprocess"] == "int8" and out["winner"]["predicted_goodput_per_s"] is not None
    assert "engine died" in out["default"]["error"] and any("predicted" in s for s in said)
    # the confirmation's prediction climbs the confirmation's ladder: as many requests a point as it was served
    # (100, or 180 s of arrivals where that is fewer)
    points = out["winner"]["points"]
    assert all(p["n_requests"] == point_requests(p["offered_rate_per_s"], 2.0, 100) for p in points)
    assert any(p["n_requests"] < 100 for p in points) and any(p["n_requests"] == 100 for p in points)
