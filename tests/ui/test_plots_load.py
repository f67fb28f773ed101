"""Latency-vs-load figure (workbench.ui.plots_load) from load rows."""
import pytest

from workbench.ui.plots_load import curves, goodput_of, load_figure


def _rows():
    rows = []
    for config, scale in (("b8 q0us x2 t1", 1.0), ("no-batching x1 t2", 3.0)):
        for rate, meets in ((10, True), (20, True), (40, False), (30, True)):   # measured out of order
            rows.append({"scenario": "load", "variant": "ort-fp32", "serving_config": config,
                         "offered_rate_per_s": rate, "latency_p50_ms": scale * rate / 4, "latency_p99_ms": scale * rate,
                         "meets_slo": meets and scale == 1.0 or rate == 10, "slo_ms": 35.0, "valid": True,
                         "server_queue_ms": rate / 10, "server_compute_ms": 2.0})
    rows.append({"scenario": "batching", "variant": "ort-fp32", "batch_size": 4, "latency_p50_ms": 3.0})
    return rows


def test_curves_and_goodput_follow_the_offered_rate():
    groups = curves(_rows())
    assert list(groups) == ["ort-fp32 | b8 q0us x2 t1", "ort-fp32 | no-batching x1 t2"]
    assert [r["offered_rate_per_s"] for r in groups["ort-fp32 | b8 q0us x2 t1"]] == [10, 20, 30, 40]
    assert goodput_of(groups["ort-fp32 | b8 q0us x2 t1"]) == 30           # 40/s missed: the climb ends there
    assert goodput_of(groups["ort-fp32 | no-batching x1 t2"]) == 10
    assert goodput_of([{"offered_rate_per_s": 5, "meets_slo": False}]) is None


def test_figure_has_bands_slo_goodput_and_queue_vs_compute_with_units():
    fig = load_figure(_rows())
    names = [t.name for t in fig.data]
    best = "ort-fp32 | b8 q0us x2 t1"
    assert names[:3] == [f"{best}: p50", f"{best}: p99", f"{best}: goodput"]
    assert fig.data[1].fill == "tonexty"                                    # the p50..p99 band
    star = fig.data[2]
    assert list(star.x) == [30] and list(star.y) == [30.0]                  # goodput at its p99
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.name.split(": ")[1] for b in bars] == ["Triton compute", "Triton queue"]
    assert list(bars[1].y) == [1.0, 2.0, 3.0, 4.0] and fig.layout.barmode == "stack"
    assert any(s.y0 == 35.0 for s in fig.layout.shapes)                     # the SLO line
    assert fig.layout.xaxis2.title.text == "offered load (requests/s)"
    assert fig.layout.yaxis.title.text == "latency (ms)" and "(ms)" in fig.layout.yaxis2.title.text
    assert len(load_figure(_rows(), max_curves=1).data) == 5                 # p50, p99, star, 2 bars


def test_no_load_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="workbench load"):
        load_figure([{"scenario": "batching", "latency_p50_ms": 1.0}])


def _load(points, slo_ms=35.0):
    return [{"scenario": "load", "variant": "ort-fp32", "serving_config": "b8", "offered_rate_per_s": rate,
             "latency_p50_ms": p50, "latency_p99_ms": p99, "meets_slo": meets, "slo_ms": slo_ms, "valid": True,
             "errors": errors, "timeouts": timeouts} for rate, p50, p99, meets, errors, timeouts in points]


def test_slo_label_sits_at_the_slo_on_a_log_axis_and_the_range_comes_from_the_data():
    # p99 from 12 to 900 ms spans x75: a log axis. plotly.js reads an annotation's y on a log axis as log10(y):
    # the SLO label must be given as log10(35), else it sits at 1e35 ms and the axis stretches to reach it.
    fig = load_figure(_load([(10, 4.0, 12.0, True, 0, 0), (20, 8.0, 25.0, True, 0, 0),
                             (40, 300.0, 900.0, False, 0, 0)]))
    import math
    assert fig.layout.yaxis.type == "log"
    low, high = fig.layout.yaxis.range
    assert math.log10(4.0) - 0.2 < low < math.log10(4.0) and math.log10(900.0) < high < math.log10(900.0) + 0.2
    label = next(a for a in fig.layout.annotations if a.text == "SLO 35 ms")
    assert label.y == pytest.approx(math.log10(35.0)) and label.yref == "y"
    assert any(s.y0 == 35.0 for s in fig.layout.shapes)               # the line itself is in data units


def test_narrow_latencies_get_a_linear_axis_from_zero():
    fig = load_figure(_load([(10, 10.0, 14.0, True, 0, 0), (20, 12.0, 20.0, True, 0, 0)]))
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.range[0] == 0.0
    assert 35.0 < fig.layout.yaxis.range[1] < 40.0                     # up to the SLO line, not beyond
    assert next(a for a in fig.layout.annotations if a.text == "SLO 35 ms").y == 35.0


def test_errors_and_timeouts_are_counted_not_plotted():
    inf = float("inf")   # a miss saved as a latency (inf) must not become a point or stretch the axis
    fig = load_figure(_load([(10, 4.0, 12.0, True, 0, 0), (40, 30.0, 60.0, False, 3, 5),
                             (80, inf, inf, False, 0, 200)]))
    p50, p99 = fig.data[0], fig.data[1]
    assert list(p50.y) == [4.0, 30.0, None] and list(p99.y) == [12.0, 60.0, None]
    assert p99.text[1] == "3 errors, 5 timeouts (counted, not plotted)" and p99.text[0] == ""
    assert "3 errors and 205 timeouts at 2 points" in fig.layout.title.text
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.range[1] < 70.0   # 4..60 ms: linear, up to ~60
