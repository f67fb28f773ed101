"""Streaming-LM load figure (workbench.ui.plots_load_stream) from load-stream rows, and its report section."""
import pytest

from workbench.ui.plots_load_stream import stream_load_figure, stream_rows


def _rows():
    rows = []
    for rate, p50, p90, p99, meets in ((4.0, 9.0, 40.0, None, False), (1.0, 7.0, 20.0, 30.0, True),
                                       (2.0, 8.0, 25.0, None, True)):   # measured out of order
        rows.append({"scenario": "load-stream", "variant": "ort-fp32", "offered_rate_per_s": rate,
                     "ttft_p50_ms": p50, "ttft_p90_ms": p90, "ttft_p99_ms": p99, "tpot_p50_ms": 5.0,
                     "tpot_p90_ms": 6.0 + rate, "slo_ms": 50.0, "meets_slo": meets, "valid": rate != 4.0})
    rows.append({"scenario": "load", "variant": "clf", "offered_rate_per_s": 10.0, "latency_p50_ms": 1.0})
    return rows


def test_rows_by_model_and_rate():
    groups = stream_rows(_rows())
    assert list(groups) == ["ort-fp32"] and [r["offered_rate_per_s"] for r in groups["ort-fp32"]] == [1.0, 2.0, 4.0]


def test_figure_has_ttft_band_with_the_tail_each_point_supports_slo_goodput_and_tpot():
    fig = stream_load_figure(_rows())
    by_name = {t.name: t for t in fig.data}
    tail = by_name["ort-fp32: TTFT tail"]
    assert list(tail.y) == [30.0, 25.0, 40.0] and list(tail.text)[:2] == ["p99", "p90"]   # p99 only with samples
    assert "client-limited" in tail.text[2] and tail.fill == "tonexty"
    star = by_name["ort-fp32: goodput"]
    assert list(star.x) == [2.0]                                     # 4/s missed the SLO: the climb ends at 2/s
    assert list(by_name["ort-fp32: TPOT p90"].y) == [7.0, 8.0, 10.0]
    assert any(s.y0 == 50.0 for s in fig.layout.shapes)              # the TTFT SLO line
    assert fig.layout.yaxis.title.text == "time to first token (ms)"
    assert fig.layout.yaxis2.title.text == "time per output token (ms)"
    assert fig.layout.xaxis2.title.text == "offered load (requests/s)"


def test_no_stream_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="causal-LM bundle"):
        stream_load_figure([{"scenario": "load", "offered_rate_per_s": 1.0}])


def test_report_shows_the_stream_section():
    from workbench.results import ResultsTable
    from workbench.ui.report import build_report

    table = ResultsTable.for_study("streamrep", environment={"cpu": "Test CPU"})
    for row in _rows()[:3]:
        table.append({**row, "variant_id": "v1", "batch_size": 1})
    page = build_report("streamrep").read_text()
    section = page.split("<h2>Streaming LM under load</h2>", 1)[1].split("<h2>", 1)[0].replace("\\u002f", "/")
    assert "Plotly.newPlot" in section and "goodput 2/s" in section and "TTFT SLO 50 ms" in section
    assert "<h2>Latency under load</h2>" not in page                 # no request/response rows in this study


def test_ttft_axis_follows_the_data_and_failed_streams_are_counted():
    import math

    rows = _rows()
    rows[0].update(errors=4, ttft_p90_ms=float("inf"))      # a timed-out stream saved as inf: not a point
    fig = stream_load_figure(rows)
    tail = {t.name: t for t in fig.data}["ort-fp32: TTFT tail"]
    assert list(tail.y) == [30.0, 25.0, None] and "4 errors" in tail.text[2]
    assert "4 errors and 0 timeouts at 1 point" in fig.layout.title.text
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.range[1] < 60.0    # 7..50 ms: no log axis
    label = next(a for a in fig.layout.annotations if a.text == "TTFT SLO 50 ms")
    assert label.y == 50.0 and not math.isinf(label.y)
