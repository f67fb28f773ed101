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
