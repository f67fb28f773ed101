"""Request metrics: TTFT, TPOT, ITL (per accepted token for speculative chunks), e2e and tokens/s, by hand."""
import pytest

from workbench.measure.request_metrics import busy_seconds, itl_samples, request_metrics


def test_plain_request_by_hand():
    # prefill + first token 0.5 s, then 4 tokens 0.1, 0.1, 0.2, 0.2 s apart: 5 tokens in 1.1 s
    m = request_metrics([(10.0, [10.5, 10.6, 10.7, 10.9, 11.1], [1] * 5)])
    assert m["ttft_ms_mean"] == pytest.approx(500.0) and m["ttft_ms_p50"] == pytest.approx(500.0)
    assert m["e2e_ms_mean"] == pytest.approx(1100.0)
    assert m["tpot_ms_mean"] == pytest.approx(600.0 / 4)
    assert m["itl_samples"] == 4 and m["itl_ms_p50"] == pytest.approx(150.0)
    assert m["itl_ms_p99"] is None and m["itl_ms_p99_note"] == "n=4 < 200"
    assert m["output_tokens_per_s_request"] == pytest.approx(5 / 1.1, abs=1e-3)
    assert m["output_tokens_per_s_aggregate"] == pytest.approx(5 / 1.1, abs=1e-3)


def test_speculative_chunk_counts_every_accepted_token_over_one_gap():
    # rounds emit 1, then 4 tokens after 0.4 s, then 1 token after 0.1 s
    times, counts = [1.0, 1.4, 1.5], [1, 4, 1]
    assert itl_samples(times, counts) == pytest.approx([0.1] * 5)   # not [0.4, 0, 0, 0, 0.1]
    m = request_metrics([(0.0, times, counts)])
    assert m["output_tokens"] == 6 and m["tpot_ms_mean"] == pytest.approx(500.0 / 5)
    assert m["itl_ms_p50"] == pytest.approx(100.0) and m["itl_ms_mean"] == pytest.approx(m["tpot_ms_mean"])


def test_aggregate_rate_counts_overlap_once():
    # two requests batched together (same times) and one later: busy time is 2 + 1 s, not 2 + 2 + 1
    batch = [(0.0, [1.0, 2.0], [1, 1])] * 2
    m = request_metrics(batch + [(5.0, [5.5, 6.0], [1, 1])])
    assert busy_seconds([(0, 2), (0, 2), (5, 6), (5.5, 5.8)]) == pytest.approx(3.0)
    assert m["output_tokens_per_s_aggregate"] == pytest.approx(6 / 3.0)
    assert m["output_tokens_per_s_request"] == pytest.approx((1 + 1 + 2) / 3, abs=1e-3)
    assert m["ttft_ms_p50"] == pytest.approx(1000.0) and m["n_requests"] == 3


def test_p99_reported_from_200_gaps():
    times = [0.1 * i for i in range(1, 202)]
    m = request_metrics([(0.0, times, [1] * len(times))])
    assert m["itl_samples"] == 200 and m["itl_ms_p99"] == pytest.approx(100.0)


def test_one_token_request_has_no_tpot_and_bad_input_is_named():
    m = request_metrics([(0.0, [0.2], [1])])
    assert m["tpot_ms_mean"] is None and m["itl_samples"] == 0 and m["ttft_ms_mean"] == pytest.approx(200.0)
    with pytest.raises(ValueError, match="one token count per emission"):
        request_metrics([(0.0, [0.1, 0.2], [1])])
    with pytest.raises(ValueError, match="backwards"):
        request_metrics([(1.0, [0.5], [1])])
    with pytest.raises(ValueError, match=">= 1"):
        request_metrics([(0.0, [0.1], [0])])
    with pytest.raises(ValueError, match="no requests"):
        request_metrics([])


def test_a_batched_call_is_one_sample_carrying_its_sequences():
    # one call of batch 8: one TTFT / TPOT sample (not 8 copies), 8 x 3 output tokens in its 1.0 s
    m = request_metrics([(0.0, [0.4, 0.7, 1.0], [1, 1, 1], 8)])
    assert m["n_requests"] == 1 and m["n_sequences"] == 8 and m["itl_samples"] == 2
    assert m["output_tokens"] == 24 and m["output_tokens_per_s_aggregate"] == pytest.approx(24.0)
    assert m["tpot_ms_mean"] == pytest.approx(300.0) and m["output_tokens_per_s_request"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match=">= 1 sequence"):
        request_metrics([(0.0, [0.4], [1], 0)])


def test_fast_loop_result_is_one_request_per_call():
    import torch

    from workbench.decoding.fast_loop import DecodeResult

    res = DecodeResult(torch.zeros(4, 7, dtype=torch.long), 0.0, [0.1, 0.2, 0.3], [1, 1, 1])
    assert res.requests() == [(0.0, [0.1, 0.2, 0.3], [1, 1, 1], 4)]
    assert request_metrics(res.requests())["output_tokens"] == 12


def test_per_request_latency_and_share_within_the_slo():
    from workbench.measure.request_metrics import per_request_latency, share_within

    reqs = [(0.0, [0.1, 0.2, 0.4], [1, 1, 1]), (1.0, [1.5], [1]), (2.0, [2.05, 2.25], [1, 3])]
    lat = per_request_latency(reqs)
    assert lat[0] == pytest.approx((100.0, 150.0)) and lat[1] == pytest.approx((500.0, None))
    assert lat[2] == pytest.approx((50.0, 200.0 / 3))          # 4 tokens over one 200 ms gap: 3 intervals
    assert share_within(lat, 3, 200, 100) == pytest.approx(1 / 3)   # request 0's ITL, request 1's TTFT miss
    assert share_within(lat, 4, 600, 200) == 0.75                 # a fourth request sent that failed: a miss
    assert share_within([], 0, 1, 1) == 0.0
