"""Cost model: the shipped price table, the $/1M-token formula, LM prompt/output split, break-even, bad tables."""
import pytest

from workbench.measure.cost import (add_costs, break_even_utilisation, load_price_table, usd_per_1k_requests,
                                    usd_per_1m_requests, usd_per_1m_tokens)


def test_shipped_price_table_has_cpu_and_gpu_instances_with_sources():
    prices = load_price_table()
    kinds = {p.kind for p in prices.values()}
    assert {"cpu", "gpu"} <= kinds
    assert all(p.usd_per_hour > 0 and p.source and p.date for p in prices.values())


def test_formula_and_utilisation():
    assert usd_per_1m_tokens(3.6, 1000) == pytest.approx(1.0)            # $3.6/h at 1000 tok/s = $1 per 1M
    assert usd_per_1m_tokens(3.6, 1000, utilisation=0.25) == pytest.approx(4.0)
    assert usd_per_1k_requests(3.6, 10) == pytest.approx(0.1)
    assert break_even_utilisation(3.6, 1000, api_usd_per_1m_input_tokens=2.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="utilisation"):
        usd_per_1m_tokens(1, 1, utilisation=1.5)


def test_lm_rows_get_prompt_and_output_costs():
    row = {"batch_size": 4, "throughput_per_s": 2.0, "tokens_per_s": 500.0, "prompt_tokens_per_s": 4000.0,
           "output_tokens_per_s": 100.0, "prompt_len": 200, "output_len": 50}
    failed = {"batch_size": 8, "failed": True}
    out = add_costs([row, failed], "c7i.large", utilisation=0.5, api_usd_per_1m_input_tokens=0.1,
                    api_usd_per_1m_output_tokens=0.4)
    costed = out[0]
    assert costed["usd_per_1m_output_tokens"] > costed["usd_per_1m_tokens"] > costed["usd_per_1m_prompt_tokens"]
    assert costed["usd_per_1m_output_tokens"] == pytest.approx(0.08925 / (100 * 3600) * 1e6 / 0.5)
    assert costed["price_source"] and costed["price_date"] and "break_even_utilisation" in costed
    assert out[1] == failed and "usd_per_hour" not in row  # failed rows untouched, input rows not mutated


def test_price_table_missing_a_column_is_a_clear_error(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("instance,usd_per_hour,source\nbox,1.0,me\n")
    with pytest.raises(ValueError, match="missing column.*date"):
        load_price_table(path)
    path.write_text("instance,usd_per_hour,source,date\nbox,free,me,2026-01\n")
    with pytest.raises(ValueError, match="positive usd_per_hour"):
        load_price_table(path)
    path.write_text("# my prices\ninstance,usd_per_hour,source,date\nbox,1.5,quote,2026-01\n")
    assert load_price_table(path)["box"].usd_per_hour == 1.5
    with pytest.raises(ValueError, match="not in the price table"):
        add_costs([], "nope", prices=load_price_table(path))


def test_break_even_prices_input_and_output_tokens_apart():
    # $3.6/h = $0.001 per busy second; the API would charge 1000 x $0.5/1M + 100 x $2/1M = $0.0007 for that second.
    assert break_even_utilisation(3.6, 1000, 0.5, 100, 2.0) == pytest.approx(0.001 / 0.0007)
    with pytest.raises(ValueError, match="output tokens"):
        break_even_utilisation(3.6, 1000, 0.5, output_tokens_per_s=100)
    price = load_price_table()["c7i.large"].usd_per_hour
    # A generation row: 2 requests/s, each 200 prompt + 50 generated tokens, over the same busy time.
    row = {"batch_size": 4, "scenario": "generation-batching", "throughput_per_s": 2.0, "tokens_per_s": 500.0,
           "prompt_len": 200, "seq_len": 200, "output_len": 50, "prompt_tokens_per_s": 4000.0,
           "output_tokens_per_s": 100.0}
    costed = add_costs([row], "c7i.large", api_usd_per_1m_input_tokens=0.5, api_usd_per_1m_output_tokens=2.0)[0]
    api_per_busy_s = (2.0 * 200 * 0.5 + 2.0 * 50 * 2.0) / 1e6
    assert costed["break_even_utilisation"] == pytest.approx(price / 3600 / api_per_busy_s)
    assert costed["api_usd_per_1m_input_tokens"] == 0.5 and costed["api_usd_per_1m_output_tokens"] == 2.0
    # One price cannot stand for both: without the output price there is no break-even, and the row says why.
    one_price = add_costs([row], "c7i.large", api_usd_per_1m_input_tokens=0.5)[0]
    assert "break_even_utilisation" not in one_price and "output" in one_price["break_even_note"]


def test_classifier_token_cost_counts_real_tokens_not_padding():
    from workbench.measure.timing import measure_latency, timing_columns
    from workbench.tasks import get_task

    task = get_task("text-classification")
    inputs = task.example_inputs(8, 128)                      # padded to 128 positions each
    texts = [task.splits["test"][0][i % len(task.splits["test"][0])] for i in range(8)]
    real = sum(len(ids) for ids in task.tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    assert inputs["input_ids"].numel() == 8 * 128 and real < 8 * 128
    assert task.tokens_in(inputs) == real

    stats = measure_latency(lambda: sum(range(1000)), warmup=1, window_calls=5, max_seconds=0.5)
    row = {"batch_size": 8, "seq_len": 128, **timing_columns(stats, 8, task.tokens_in(inputs))}
    costed = add_costs([row], "c7i.large")[0]
    usd_per_request = costed["usd_per_1m_requests"] / 1e6
    # 1M tokens at the real count per request costs as many requests as hold 1M real tokens.
    assert costed["usd_per_1m_tokens"] * (real / 8) / 1e6 == pytest.approx(usd_per_request, rel=1e-3)
    assert costed["usd_per_1m_tokens"] * 128 / 1e6 > usd_per_request * 1.05  # padding would have been cheaper per token


def test_request_cost_columns_include_what_plots_colour_by():
    from workbench.ui.plots import cost_column

    rows = [{"variant_id": "a", "batch_size": b, "throughput_per_s": 10.0 * b, "latency_p50_ms": 5.0} for b in (1, 2)]
    costed = add_costs(rows, "c7i.large", utilisation=0.5)
    price = load_price_table()["c7i.large"].usd_per_hour
    for row, rps in zip(costed, (10.0, 20.0)):
        assert row["usd_per_1m_requests"] == pytest.approx(usd_per_1m_requests(price, rps, 0.5))
        assert row["usd_per_1m_requests"] == pytest.approx(1000 * row["usd_per_1k_requests"])
        assert "usd_per_1m_tokens" not in row  # no token count: no token cost (seq_len would count padding)
    assert cost_column(costed) in costed[0]


def test_api_rows_split_cached_and_uncached_prompt_tokens(tmp_path):
    from workbench.measure.cost import load_api_prices

    apis = load_api_prices()
    assert len(apis) >= 8 and not set(apis) & set(load_price_table())        # API rows never priced per hour
    for api in apis.values():
        assert 0 < api.usd_per_1m_cached_input < api.usd_per_1m_input and api.usd_per_1m_output > 0
        assert api.source and api.date
    api = apis["openai/gpt-4o-mini"]
    # 1M prompt tokens, 900k of them a cached prefix, + 100k output
    expected = (100_000 * api.usd_per_1m_input + 900_000 * api.usd_per_1m_cached_input
                + 100_000 * api.usd_per_1m_output) / 1e6
    assert api.prompt_usd(1e6, 9e5, 1e5) == pytest.approx(expected)
    with pytest.raises(ValueError, match="cached tokens"):
        api.prompt_usd(100, 200)
    path = tmp_path / "prices.csv"
    path.write_text("instance,kind,usd_per_hour,source,date,usd_per_1m_input,usd_per_1m_cached_input,usd_per_1m_output\n"
                    "box,cpu,1.0,me,2026-01,,,\nx/api,api,,me,2026-01,1.0,2.0,3.0\n")
    assert list(load_price_table(path)) == ["box"]
    with pytest.raises(ValueError, match="cached input price above"):
        load_api_prices(path)


def test_prefix_cache_saving_prices_the_measured_prefill_rates():
    from workbench.measure.cost import load_api_prices, prefix_cache_saving

    trial = {"prompt_tokens_per_s_full": 100.0, "prompt_tokens_per_s_reused": 400.0, "cached_share": 0.9}
    api = load_api_prices()["anthropic/claude-haiku-4.5"]
    out = prefix_cache_saving(3.6, trial, api=api)
    assert out["usd_per_1m_prompt_tokens_uncached"] == pytest.approx(10.0)       # $3.6/h at 100 tok/s
    assert out["usd_per_1m_prompt_tokens_prefix_cached"] == pytest.approx(2.5)
    assert out["prefix_cache_saving_pct"] == pytest.approx(75.0)
    assert out["api_usd_per_1m_prompt_cached"] == pytest.approx(0.1 * api.usd_per_1m_input
                                                                + 0.9 * api.usd_per_1m_cached_input)
