"""The continuous-batching simulation and the goodput it predicts: cases with known answers (no engine, no torch)."""
from __future__ import annotations

import pytest

from workbench.measure.request_metrics import request_metrics
from workbench.measure.step_times import StepTimes
from workbench.serving.engine.predict import (bisect_goodput, idle_start_rate, predict_goodput, prediction_error_pct,
                                              simulate, simulate_point)


def test_saturation_throughput_is_slots_over_tokens_times_step():
    # constant step time T, negligible prefill: S slots each busy N iterations -> S / (N T) requests per second
    T, S, N = 0.01, 4, 8
    times = StepTimes(1e-6, {1: T, 4: T})
    offsets = [i * 0.001 for i in range(200)]            # 1000/s offered: far above saturation (50/s)
    reqs = simulate(times, offsets, N, S)
    ends = sorted(e[-1] for _, e, _ in reqs)
    steady = (len(ends) - 1 - 20) / (ends[-1] - ends[20])  # completions per second once the slots are full
    assert steady == pytest.approx(S / (N * T), rel=0.02)
    assert all(len(e) == N for _, e, _ in reqs)


def test_low_rate_ttft_is_the_prefill_and_itl_the_batch1_step():
    times = StepTimes(0.05, {1: 0.02, 2: 0.03})
    reqs = simulate(times, [0.0, 10.0, 20.0], 5, 2)      # never two in flight
    m = request_metrics(reqs)
    assert m["ttft_ms_mean"] == pytest.approx(50.0)
    assert m["tpot_ms_mean"] == pytest.approx(20.0)


def test_overlap_uses_the_interpolated_step_and_queues_past_max_num_seqs():
    times = StepTimes(0.01, {1: 0.02, 4: 0.05})          # tpot(2) = 0.03 by interpolation
    assert times.tpot_at(2) == pytest.approx(0.03) and times.tpot_at(8) == pytest.approx(0.09)
    reqs = simulate(times, [0.0, 0.0], 3, 1)              # one slot: the second waits for the first to finish
    (a0, e0, _), (a1, e1, _) = reqs
    assert e0 == pytest.approx([0.01, 0.03, 0.05])
    assert e1[0] == pytest.approx(0.05 + 0.01)            # admitted after the first left, then its prefill
    both = simulate(times, [0.0, 0.0], 3, 2)              # two slots: one iteration prefills both (2 x 0.01)
    assert [e[0] for _, e, _ in both] == pytest.approx([0.02, 0.02])
    assert both[0][1][1] - both[0][1][0] == pytest.approx(0.03)   # then decode steps at batch 2


def test_token_budget_limits_prompts_per_iteration():
    times = StepTimes(0.01, {1: 0.02, 4: 0.02})
    reqs = simulate(times, [0.0] * 3, 2, 4, prompt_tokens=100, max_num_batched_tokens=200)
    # the third prompt waits one iteration; it then runs in one forward pass with the first two's next tokens
    assert [e[0] for _, e, _ in reqs] == pytest.approx([0.02, 0.02, 0.02 + 0.01 + 2 * 0.01 / 100])


def test_a_prompt_and_running_sequences_share_one_forward_pass():
    # prefill 128 tokens in 0.128 s (1 ms a token); decode at batch 1 0.05 s; a second request arrives mid-answer
    times = StepTimes(0.128, {1: 0.05, 2: 0.06}, prompt_tokens=128)
    (_, first, _), (_, second, _) = simulate(times, [0.0, 0.2], 4, 2)
    assert first[:3] == pytest.approx([0.128, 0.178, 0.228])
    # the iteration that admits the second prompt carries the first's next token at a prompt token's cost (1 ms),
    # not a whole decode step (50 ms): the sum of the two calls overstated the running sequence's ITL
    assert second[0] == pytest.approx(0.228 + 0.128 + 0.001) and first[3] == pytest.approx(second[0])
    # without a prompt length the price per token is unknown: the iteration costs the two calls' sum
    bare = StepTimes(0.128, {1: 0.05, 2: 0.06})
    assert simulate(bare, [0.0, 0.2], 4, 2)[1][1][0] == pytest.approx(0.228 + 0.128 + 0.05)
    # a decode step cheaper than as many prompt tokens stays the decode step
    dear = StepTimes(12.8, {1: 0.05, 2: 0.06}, prompt_tokens=128)
    assert simulate(dear, [0.0, 12.9], 4, 2)[1][1][0] == pytest.approx(12.8 + 0.05 + 0.05 + 12.8 + 0.05)


def test_prediction_is_seeded_and_deterministic():
    times = StepTimes(0.01, {1: 0.02, 2: 0.022, 4: 0.025, 8: 0.03})
    a = predict_goodput(times, 32, 8, slo_ttft_ms=100, slo_itl_ms=40)
    b = predict_goodput(times, 32, 8, slo_ttft_ms=100, slo_itl_ms=40)
    assert a.as_dict() == b.as_dict() and a.goodput_per_s is not None
    assert a.start_rate == idle_start_rate(times, 32) == round(1 / (0.01 + 31 * 0.02), 3)
    # the climb's goodput is a rung it passed, and no rung above it passed before the first miss
    passed = [r["offered_rate_per_s"] for r in a.rows if r["meets_slo"]]
    assert a.goodput_per_s in passed
    # below saturation (8 / (32 x 0.03) = 8.3/s) and the bisection's limit within 1% of a pass / miss boundary
    assert a.bisect_per_s < 8 / (32 * 0.03)
    assert simulate_point(times, a.bisect_per_s, 0, 32, 8, 100, 40)["meets_slo"]
    assert not simulate_point(times, a.bisect_per_s * 1.02, 0, 32, 8, 100, 40)["meets_slo"]


def test_goodput_falls_as_the_decode_step_grows():
    goods = []
    for scale in (1.0, 1.3, 1.7):
        times = StepTimes(0.01, {b: scale * t for b, t in {1: 0.02, 2: 0.022, 4: 0.025, 8: 0.03}.items()})
        goods.append(predict_goodput(times, 32, 8, 200, 60, start_rate=1.0).bisect_per_s)
    assert goods[0] > goods[1] > goods[2] > 0


def test_an_slo_below_the_idle_latency_predicts_no_goodput():
    times = StepTimes(0.05, {1: 0.02})
    pred = predict_goodput(times, 8, 1, slo_ttft_ms=10, slo_itl_ms=100)   # TTFT is at least the 50 ms prefill
    assert pred.goodput_per_s is None and pred.bisect_per_s is None
    assert pred.error_pct(2.0) is None


def test_bisect_on_a_known_threshold():
    assert bisect_goodput(lambda r: r <= 3.3, 1.0) == pytest.approx(3.3, rel=0.011)
    assert bisect_goodput(lambda r: r <= 0.2, 1.0) == pytest.approx(0.2, rel=0.011)
    assert bisect_goodput(lambda r: False, 1.0) is None


def test_error_pct():
    assert prediction_error_pct(1.2, 1.0) == 20.0 and prediction_error_pct(0.5, 1.0) == -50.0
    assert prediction_error_pct(None, 1.0) is None and prediction_error_pct(1.0, None) is None


@pytest.mark.parametrize("bad", [dict(prefill_s=0.01, tpot_s={}), dict(prefill_s=0.0, tpot_s={1: 0.01}),
                                 dict(prefill_s=0.01, tpot_s={0: 0.01}), dict(prefill_s=0.01, tpot_s={1: -1.0})])
def test_bad_step_times_are_refused(bad):
    with pytest.raises(ValueError, match="step time|prefill|batch"):
        StepTimes(**bad)


@pytest.mark.parametrize("slo", [(0, 10), (10, 0), (-5, 10), (None, 10)])
def test_bad_slo_is_refused(slo):
    with pytest.raises(ValueError, match="SLO"):
        predict_goodput(StepTimes(0.01, {1: 0.02}), 8, 1, *slo)


def test_bad_simulation_input_is_refused():
    times = StepTimes(0.01, {1: 0.02})
    with pytest.raises(ValueError, match="new tokens"):
        simulate(times, [0.0], 1, 1)
    with pytest.raises(ValueError, match="ascending"):
        simulate(times, [1.0, 0.5], 4, 1)
    with pytest.raises(ValueError, match="prompt length"):
        simulate(times, [0.0], 4, 1, max_num_batched_tokens=64)


def test_calibration_scales_to_the_served_idle_point_and_keeps_the_growth_with_the_batch():
    from workbench.serving.engine.predict import calibrated

    times = StepTimes(prefill_s=0.05, tpot_s={1: 0.010, 2: 0.012, 4: 0.016}, prompt_tokens=64)
    cal = calibrated(times, idle_ttft_ms=40.0, idle_itl_ms=5.0)   # the engine: 0.8x prefill, 0.5x the decode step
    assert cal.prefill_s == pytest.approx(0.040) and cal.prompt_tokens == 64
    assert cal.tpot_s == pytest.approx({1: 0.005, 2: 0.006, 4: 0.008}) and "calibrated" in cal.notes
    # a faster engine serves more under the same SLO
    kw = dict(new_tokens=16, max_num_seqs=4, slo_ttft_ms=400.0, slo_itl_ms=30.0, start_rate=1.0)
    assert predict_goodput(cal, **kw).bisect_per_s > predict_goodput(times, **kw).bisect_per_s
    with pytest.raises(ValueError, match="idle_latency"):
        calibrated(times, idle_ttft_ms=0.0, idle_itl_ms=5.0)


def test_scaled_step_times_move_the_predicted_limit_the_right_way():
    from workbench.serving.engine.predict import scaled

    times = StepTimes(prefill_s=0.05, tpot_s={1: 0.010, 2: 0.012, 4: 0.016}, prompt_tokens=64)
    slow = scaled(times, 1.1)
    assert slow.prefill_s == pytest.approx(0.055) and slow.tpot_s == pytest.approx({1: 0.011, 2: 0.0132, 4: 0.0176})
    kw = dict(new_tokens=16, max_num_seqs=4, slo_ttft_ms=400.0, slo_itl_ms=30.0, start_rate=1.0)
    limit = {k: predict_goodput(scaled(times, k), **kw).bisect_per_s for k in (1.5, 1.1, 1.0, 0.9, 0.67)}
    assert limit[1.5] < limit[1.0] < limit[0.67]
    # 10% apart the order holds, though not always strictly: each rate is judged on its own seeded Poisson arrivals
    assert limit[1.1] <= limit[1.0] <= limit[0.9]
    with pytest.raises(ValueError, match="> 0"):
        scaled(times, 0.0)


def test_a_burst_point_sets_how_the_step_grows_with_the_batch():
    from workbench.serving.engine.predict import calibrated

    times = StepTimes(prefill_s=0.05, tpot_s={1: 0.010, 2: 0.015, 4: 0.020}, prompt_tokens=64)   # in-process: x2 at 4
    # the engine: 5 ms alone, 7.5 ms with 4 running (x1.5): the in-process shape stretched between the two
    cal = calibrated(times, idle_ttft_ms=40.0, idle_itl_ms=5.0, burst_size=4, burst_itl_ms=7.5)
    assert cal.tpot_s == pytest.approx({1: 0.005, 2: 0.00625, 4: 0.0075}) and "burst ITL p50 7.5 ms" in cal.notes
    flat = StepTimes(prefill_s=0.05, tpot_s={1: 0.010, 2: 0.010, 4: 0.010})   # no in-process growth: a straight line
    assert calibrated(flat, 40.0, 5.0, 4, 8.0).tpot_s == pytest.approx({1: 0.005, 2: 0.006, 4: 0.008})
    # a burst read below the idle step is noise: the steps stay at the idle one
    assert calibrated(times, 40.0, 5.0, 4, 4.0).tpot_s == pytest.approx({1: 0.005, 2: 0.005, 4: 0.005})
    # the engine that batches more cheaply than the in-process kernels serves more under the same SLO
    kw = dict(new_tokens=16, max_num_seqs=4, slo_ttft_ms=400.0, slo_itl_ms=9.0, start_rate=1.0)
    assert (predict_goodput(cal, **kw).bisect_per_s >
            predict_goodput(calibrated(times, 40.0, 5.0), **kw).bisect_per_s)
