"""Plot conventions: units on axes, Pareto front drawn, baseline marked, hover with lineage, stable family colours."""
from workbench.ui import plots


def _row(variant, vid, p50, quality, step=None, lineage=(), batch=1, **extra):
    return {"variant": variant, "variant_id": vid, "step": step, "lineage": [list(x) for x in lineage],
            "backend": "torch", "device": "cpu", "precision": "fp32", "batch_size": batch, "seq_len": 128,
            "latency_p50_ms": p50, "latency_p90_ms": p50 * 1.1, "latency_p99_ms": p50 * 1.3, "quality": quality,
            "quality_ci_low": None if quality is None else quality - 0.02,
            "quality_ci_high": None if quality is None else quality + 0.02, "quality_n": 100,
            "metric": "accuracy", "higher_is_better": True, "throughput_per_s": batch * 1e3 / p50, **extra}


ROWS = [
    _row("torch-fp32", "base", 10.0, 0.80),
    _row("ort-fp32", "onnx", 6.0, 0.80, "export_onnx", [("export_onnx", {"type": "ExportOnnxConfig", "opset": 17})]),
    _row("ort-int8", "q8", 3.0, 0.78, "quantize_dynamic",
         [("export_onnx", {"opset": 17}), ("quantize_dynamic", {"per_channel": True})]),
    _row("ort-int8-bad", "q8b", 8.0, 0.70, "quantize_dynamic"),   # dominated: not on the front
    _row("torch-fp32", "base", 30.0, None, batch=8),
    {"variant": "broken", "failed": True, "error": "ValueError: x"},
]


def test_pareto_figure_draws_front_baseline_units_and_hover():
    fig = plots.pareto_figure(ROWS)
    names = [t.name for t in fig.data]
    assert names[0] == "baseline" and "Pareto front" in names and "quantize_dynamic" in names
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [3.0, 6.0]                           # fastest first, dominated point left out
    assert fig.layout.xaxis.title.text == "p50 latency (ms)"
    assert "accuracy" in fig.layout.yaxis.title.text and "higher is better" in fig.layout.yaxis.title.text
    assert fig.data[0].marker.symbol == "star"
    assert any("baseline" in a.text for a in fig.layout.annotations)
    q8 = next(t for t in fig.data if t.name == "quantize_dynamic")
    assert "export_onnx(opset=17) → quantize_dynamic(per_channel=True)" in q8.text[0]
    assert "95% CI" in q8.text[0]
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 4   # failed and quality-less rows not drawn


def test_cost_colours_points_and_family_colour_stays_on_outline():
    rows = [dict(r, usd_per_1m_tokens=1.0 + i) for i, r in enumerate(ROWS[:4])]
    fig = plots.pareto_figure(rows)
    assert fig.layout.coloraxis.colorbar.title.text == "$ per 1M tokens"
    q8 = next(t for t in fig.data if t.name == "quantize_dynamic")
    assert q8.marker.line.color == plots.family_color("quantize_dynamic")
    assert list(q8.marker.color) == [3.0, 4.0]
    both = [dict(r, usd_per_1k_requests=0.5) for r in rows]            # a classifier: $ per request reads better
    assert plots.pareto_figure(both).layout.coloraxis.colorbar.title.text == "$ per 1k requests"
    lm = [dict(r, tokens_per_s=1e3) for r in both]
    assert plots.pareto_figure(lm).layout.coloraxis.colorbar.title.text == "$ per 1M tokens"


def test_family_colours_are_stable_and_distinct():
    assert plots.family_color("quantize_static") != plots.family_color("quantize_dynamic")
    assert plots.family_color("some_new_step") == plots.family_color("some_new_step")


def test_batching_figure_and_figures_for():
    fig = plots.batching_figure(ROWS, slo_ms=20)
    assert fig.layout.xaxis.title.text == "batch size (requests)"
    assert fig.layout.yaxis2.title.text == "throughput (items/s)"
    assert any("SLO 20 ms" in (a.text or "") for a in fig.layout.annotations)
    titles = [t for t, _f in plots.figures_for(ROWS)]
    assert titles[0].startswith("Quality vs latency") and "Latency and throughput vs batch size" in titles


def test_perplexity_front_prefers_lower():
    rows = [dict(r, metric="perplexity", higher_is_better=False) for r in ROWS[:4]]
    fig = plots.pareto_figure(rows)
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [3.0, 8.0]                           # 0.70 beats 0.78 when lower is better
    assert "lower is better" in fig.layout.yaxis.title.text


def test_plots_are_not_imported_by_workbench():
    import subprocess
    import sys

    code = "import sys, workbench; assert 'plotly' not in sys.modules and 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
