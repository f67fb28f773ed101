"""LLM serving figures (workbench.ui.plots_llm) from hand-made rows: axis values are the rows', units on axes."""
from workbench.ui.plots_llm import (
    COST_KINDS,
    cost_figure,
    ppl_figure,
    summary_table,
    ttft_tpot_figure,
)


def _rows():
    return [
        {"arm": "fp32", "available": True, "ttft_ms": 40.0, "tpot_ms": 12.5, "output_tokens_per_s": 80.0,
         "usd_per_1m_output_tokens": 0.31, "usd_per_1m_prompt_tokens": 0.05, "instance": "c7i.large",
         "usd_per_hour": 0.08925},
        {"arm": "int4-wo", "available": True, "ttft_ms": 30.0, "tpot_ms": 6.0, "output_tokens_per_s": 166.7,
         "usd_per_1m_output_tokens": 0.15, "usd_per_1m_prompt_tokens": 0.04, "ppl_increase_pct": 1.5,
         "ppl_increase_ci_pct": [0.5, 2.75], "instance": "c7i.large", "usd_per_hour": 0.08925},
        {"arm": "bf16", "available": False, "reason": "no AMX/AVX512-BF16 on this CPU"},
        {"arm": "prefix-cache", "available": True, "ttft_ms": 9.0, "usd_per_1m_prompt_tokens": 0.06,
         "usd_per_1m_prompt_tokens_prefix_cached": 0.02},
    ]


def test_ttft_tpot_points_are_the_rows_values_with_ms_axes_and_unavailable_arms_noted():
    fig = ttft_tpot_figure(_rows())
    # prefix-cache has no TPOT and bf16 did not run: only the two generation arms are points
    assert [t.name for t in fig.data] == ["fp32", "int4-wo"]
    assert [(t.x[0], t.y[0]) for t in fig.data] == [(40.0, 12.5), (30.0, 6.0)]
    assert "(ms)" in fig.layout.xaxis.title.text and "TTFT" in fig.layout.xaxis.title.text
    assert "(ms)" in fig.layout.yaxis.title.text and "TPOT" in fig.layout.yaxis.title.text
    note = fig.layout.annotations[0].text
    assert "bf16" in note and "no AMX/AVX512-BF16" in note and "fp32" not in note
    assert "1.5% vs fp32" in fig.data[1].customdata[0] and "n/a% vs fp32" in fig.data[0].customdata[0]


def test_cost_bars_group_token_kinds_with_the_rows_dollars():
    fig = cost_figure(_rows())
    bars = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert list(bars) == [label for _c, label in COST_KINDS]
    assert bars["output tokens"] == {"fp32": 0.31, "int4-wo": 0.15}
    assert bars["prompt tokens, uncached"] == {"fp32": 0.05, "int4-wo": 0.04, "prefix-cache": 0.06}
    assert bars["prompt tokens, shared prefix cached"] == {"prefix-cache": 0.02}
    assert fig.layout.barmode == "group" and "(USD)" in fig.layout.yaxis.title.text
    assert "c7i.large at $0.08925/h" in fig.layout.title.text


def test_ppl_figure_error_bars_are_the_ci_distances():
    fig = ppl_figure(_rows())
    bar = fig.data[0]
    assert list(bar.x) == ["int4-wo"] and list(bar.y) == [1.5]
    assert list(bar.error_y.arrayminus) == [1.0] and list(bar.error_y.array) == [1.25]
    assert "(%)" in fig.layout.yaxis.title.text


def test_summary_table_shows_each_arm_and_the_reason_an_arm_did_not_run():
    text = summary_table(_rows())
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["arm", "available", "ttft_ms", "tpot_ms"]
    assert [ln.split()[0] for ln in lines[1:]] == ["fp32", "int4-wo", "bf16", "prefix-cache"]
    assert "no AMX/AVX512-BF16" in lines[3] and lines[3].split()[1] == "False"


def test_rate_bars_split_prefill_and_decode_per_arm():
    from workbench.ui.plots_llm import rate_figure

    rows = _rows()
    rows[0]["prompt_tokens_per_s"] = 400.0
    bars = {t.name: dict(zip(t.x, t.y)) for t in rate_figure(rows).data}
    assert bars == {"prompt tokens/s (prefill)": {"fp32": 400.0},
                    "output tokens/s (decode)": {"fp32": 80.0, "int4-wo": 166.7}}


def test_llm_rows_are_the_panels_scenario():
    from workbench.ui.llm_panel import SCENARIO
    from workbench.ui.plots_llm import SCENARIO as NAMED_HERE, llm_rows

    assert NAMED_HERE == SCENARIO
    assert llm_rows([{"scenario": SCENARIO, "arm": "fp32"}, {"scenario": "load"}]) == [{"scenario": SCENARIO,
                                                                                          "arm": "fp32"}]
