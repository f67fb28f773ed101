"""Plot conventions: units on axes, Pareto front drawn, baseline marked, hover with lineage, stable family colours."""
import pytest

from workbench.ui import plots


def _row(variant, vid, p50, quality, step=None, lineage=(), batch=1, seq_len=128, **extra):
    return {"variant": variant, "variant_id": vid, "step": step, "lineage": [list(x) for x in lineage],
            "backend": "torch", "device": "cpu", "precision": "fp32", "batch_size": batch, "seq_len": seq_len,
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
    assert plots.pareto_figure(both).layout.coloraxis.colorbar.title.text == "$ per 1k requests"   # old rows
    both = [dict(r, usd_per_1m_requests=500.0) for r in both]          # rows costed now: per 1M requests
    assert plots.pareto_figure(both).layout.coloraxis.colorbar.title.text == "$ per 1M requests"
    counted = [dict(r, tokens_per_s=1e3) for r in both]                # classifiers count real tokens too
    assert plots.pareto_figure(counted).layout.coloraxis.colorbar.title.text == "$ per 1M requests"
    lm = [dict(r, tokens_per_s=1e3, metric="perplexity", higher_is_better=False) for r in both]
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
    # the title names the rows' metric (this asserted a generic "Quality vs latency" before)
    assert titles[0].startswith("accuracy vs p50 latency") and "Latency and throughput vs batch size" in titles


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


# ---- issue #12: every number right ----------------------------------------------------------------------------------

def test_cost_colour_is_a_column_add_costs_produces_per_1m_requests_without_micro_prefixes():
    from workbench.measure.cost import add_costs

    clf = [dict(r, seq_len=128) for r in ROWS[:4]]
    costed = add_costs(clf, "c7i.large")
    for row in costed:
        assert row["usd_per_1m_requests"] == pytest.approx(row["usd_per_1k_requests"] * 1000)
    assert plots.cost_column(costed) == "usd_per_1m_requests"
    colorbar = plots.pareto_figure(costed).layout.coloraxis.colorbar
    assert colorbar.title.text == "$ per 1M requests"
    assert colorbar.tickformat and "s" not in colorbar.tickformat and colorbar.exponentformat == "none"  # no "170µ"
    # every column a plot may colour by is one the cost model produces (classifier rows, LM sweep rows)
    lm = {"batch_size": 1, "throughput_per_s": 5.0, "tokens_per_s": 400.0, "prompt_tokens_per_s": 3000.0,
          "output_tokens_per_s": 80.0}
    produced = set(costed[0]) | set(add_costs([lm], "c7i.large")[0])
    assert set(plots.COST_COLUMNS) <= produced, set(plots.COST_COLUMNS) - produced


def test_pareto_figure_draws_one_front_per_batch_size_and_length():
    rows = [_row("torch-fp32", "base", 10.0, 0.80), _row("ort-int8", "q8", 3.0, 0.78, "quantize_dynamic"),
            # batch 8: slower per call, never on a line with batch-1 points
            _row("torch-fp32", "base", 30.0, 0.80, batch=8), _row("ort-int8", "q8", 12.0, 0.78, "quantize_dynamic",
                                                                    batch=8)]
    fig = plots.pareto_figure(rows)
    fronts = {t.name: list(t.x) for t in fig.data if t.name.startswith("Pareto front")}
    assert fronts == {"Pareto front (batch 1)": [3.0, 10.0], "Pareto front (batch 8)": [12.0, 30.0]}


def test_lines_never_join_points_of_different_lengths_or_batch_sizes():
    rows = [_row("torch-fp32", "base", 1.0 * b * s / 16, None, batch=b, seq_len=s) for s in (16, 32) for b in (1, 2, 4)]
    fig = plots.batching_figure(rows)
    latency = [t for t in fig.data if t.xaxis == "x"]
    assert sorted(t.name for t in latency) == ["torch-fp32 (16 tokens)", "torch-fp32 (32 tokens)"]
    for trace in latency:
        seq = 16 if "16" in trace.name else 32
        assert list(trace.x) == [1, 2, 4] and list(trace.y) == [b * seq / 16 for b in (1, 2, 4)]
    by_length = plots.line_figure(rows, "seq_len", "latency_p50_ms")
    assert sorted(t.name for t in by_length.data) == ["torch-fp32 (batch 1)", "torch-fp32 (batch 2)",
                                                     "torch-fp32 (batch 4)"]
    assert all(list(t.x) == [16, 32] for t in by_length.data)


def test_lineage_shows_only_what_differs_from_each_steps_defaults():
    from workbench.core import config_to_dict
    from workbench.steps import ExportOnnxConfig, QuantizeDynamicConfig

    int8 = QuantizeDynamicConfig(per_channel=True, reduce_range=True)
    row = {"lineage": [["export_onnx", config_to_dict(ExportOnnxConfig())], ["quantize_dynamic", config_to_dict(int8)]]}
    assert plots.lineage_text(row) == "baseline → export_onnx → quantize_dynamic(per_channel=True, reduce_range=True)"
    changed = {"lineage": [["export_onnx", config_to_dict(ExportOnnxConfig(opset=18, batch_sizes=(1, 2, 8)))]]}
    assert plots.lineage_text(changed) == "baseline → export_onnx(opset=18, batch_sizes=[1, 2, 8])"
    # a config the registry does not know keeps the fields that are set, never the Nones
    unknown = {"lineage": [["someone_elses_step", {"type": "ElseConfig", "alpha": 0.5, "out_dir": None}]]}
    assert plots.lineage_text(unknown) == "baseline → someone_elses_step(alpha=0.5)"


def test_figures_for_leaves_load_points_and_llm_arms_to_their_own_figures():
    from workbench.ui.plots import figures_for

    sweep = [{"variant": "ort", "variant_id": "v", "scenario": "batching", "batch_size": b, "latency_p50_ms": 2.0 * b,
              "throughput_per_s": 500.0 / b ** 0.5, "device": "cpu"} for b in (1, 4)]
    load = [{"variant": "ort", "variant_id": "v", "scenario": "load", "batch_size": 1, "latency_p50_ms": 90.0,
             "throughput_per_s": 20.0, "offered_rate_per_s": 20.0}]
    arm = [{"variant": "fp32", "arm": "fp32", "scenario": "llm-serving", "batch_size": 1, "latency_p50_ms": 500.0,
            "throughput_per_s": 0.4}]
    (title, fig), = figures_for(sweep + load + arm)
    assert title == "Latency and throughput vs batch size"
    latency = [t for t in fig.data if t.xaxis == "x"]
    assert len(latency) == 1 and list(latency[0].y) == [2.0, 8.0]        # one line: the sweep, no load point
    assert figures_for(load + arm) == []
