"""Cost model: the shipped price table, the $/1M-token formula, LM prompt/output split, break-even, bad tables."""
import pytest

from workbench.measure.cost import (add_costs, break_even_utilisation, load_price_table, usd_per_1k_requests,
                                    usd_per_1m_tokens)


def test_shipped_price_table_has_cpu_and_gpu_instances_with_sources():
    prices = load_price_table()
    kinds = {p.kind for p in prices.values()}
    assert {"cpu", "gpu"} <= kinds
    assert all(p.usd_per_hour > 0 and p.source and p.date for p in prices.values())


def test_formula_and_utilisation():
    assert usd_per_1m_tokens(3.6, 1000) == pytest.approx(1.0)            # $3.6/h at 1000 tok/s = $1 per 1M
    assert usd_per_1m_tokens(3.6, 1000, utilisation=0.25) == pytest.approx(4.0)
    assert usd_per_1k_requests(3.6, 10) == pytest.approx(0.1)
    assert break_even_utilisation(3.6, 1000, api_usd_per_1m_tokens=2.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="utilisation"):
        usd_per_1m_tokens(1, 1, utilisation=1.5)


def test_lm_rows_get_prompt_and_output_costs():
    row = {"batch_size": 4, "throughput_per_s": 2.0, "tokens_per_s": 500.0, "prompt_tokens_per_s": 4000.0,
           "output_tokens_per_s": 100.0}
    failed = {"batch_size": 8, "failed": True}
    out = add_costs([row, failed], "c7i.large", utilisation=0.5, api_usd_per_1m_tokens=0.1)
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
