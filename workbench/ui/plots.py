"""Plots: pure functions from result rows (or a ResultsTable) to plotly figures.

Conventions every figure follows: axes carry units, the Pareto front is drawn, the baseline is marked,
hovering a point shows its lineage and config, and each step family keeps one colour in every figure.
Failed rows (``failed: True``) are never drawn as points. Plotly is imported inside the functions.

Example:
    >>> from workbench.ui import plots
    >>> fig = plots.pareto_figure(table)          # accuracy vs p50 latency   # doctest: +SKIP
    >>> fig = plots.batching_figure(table, slo_ms=50)                         # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import math

from workbench.results import PARETO_GROUP, UNITS, group_rows, metric_name, pareto_front
from workbench.ui.lineage import config_changes, lineage_text  # noqa: F401 - figures' hover text; re-exported
from workbench.util.numbers import is_number

# One colour per step family, the same in every figure (Okabe-Ito-like, readable by colour-blind users).
FAMILY_COLORS = {
    "baseline": "#444444", "export_onnx": "#0072B2", "optimize": "#56B4E9", "quantize_dynamic": "#E69F00",
    "quantize_static": "#D55E00", "distill": "#CC79A7", "precision": "#009E73", "compile": "#8C564B",
    "speculative": "#F0E442",
}
_SPARE_COLORS = ("#17BECF", "#BCBD22", "#7F7F7F", "#9467BD", "#2CA02C", "#1F77B4")

# Cost columns (each produced by workbench.measure.cost.add_costs), most specific first: the Pareto plot colours
# points by one the rows have (see cost_column). Per 1M, so dollar amounts read without micro-prefixes.
COST_COLUMNS = ("usd_per_1m_tokens", "usd_per_1m_output_tokens", "usd_per_1m_requests", "usd_per_1k_requests")
# Plain significant digits on cost scales: plotly's default SI prefixes turn $0.00017 into "170µ".
COST_TICKFORMAT = ".3~g"
# Lines of a line figure never join rows that differ in one of these (other than the x column): a batch-8 point
# and a batch-1 point, two sequence lengths, two machines are separate lines.
LINE_SPLIT = ("task", "variant_id", "device", "batch_size", "seq_len", "output_len", "environment_id")
_SPLIT_LABELS = {"task": "task {}", "variant_id": "[{}]", "device": "{}", "batch_size": "batch {}",
                 "seq_len": "{} tokens", "output_len": "{} out", "environment_id": "env {}"}

AXIS_LABELS = {
    "latency_p50_ms": "p50 latency (ms)", "latency_p90_ms": "p90 latency (ms)", "latency_p99_ms": "p99 latency (ms)",
    "throughput_per_s": "throughput (items/s)", "tokens_per_s": "throughput (tokens/s)", "size_mb": "size (MB)",
    "peak_rss_mb": "peak RSS (MB)", "batch_size": "batch size (requests)", "seq_len": "sequence length (tokens)",
    "usd_per_1m_tokens": "$ per 1M tokens", "usd_per_1m_output_tokens": "$ per 1M output tokens",
    "usd_per_1m_requests": "$ per 1M requests", "usd_per_1k_requests": "$ per 1k requests",
}


def axis_label(column: str, rows: list[dict] | None = None) -> str:
    """Axis title with units: known columns by name, ``quality`` by the rows' metric and direction."""
    if column == "quality" and rows:
        metric = metric_name(rows)
        if metric is None:
            names = sorted({r["metric"] for r in rows if r.get("metric")})
            if len(names) > 1:
                return f"{' / '.join(names)} (mixed metrics: each task's own)"
            metric = "quality"
        better = "higher" if rows[0].get("higher_is_better", True) else "lower"
        unit = "fraction of test set, " if metric == "accuracy" else ""
        return f"{metric} ({unit}{better} is better)"
    if column in AXIS_LABELS:
        return AXIS_LABELS[column]
    unit = UNITS.get(column)
    return f"{column} ({unit})" if unit else column


def family(row: dict) -> str:
    """Step family of a row: an explicit ``family`` (e.g. distil -> quantise rows share one), else the last step
    applied, else ``baseline``."""
    return row.get("family") or row.get("step") or "baseline"


def family_color(name: str) -> str:
    """Stable colour of a step family; unknown families get a colour from a hash, so it never changes."""
    if name in FAMILY_COLORS:
        return FAMILY_COLORS[name]
    digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    return _SPARE_COLORS[digest % len(_SPARE_COLORS)]


def hover_text(row: dict) -> str:
    """Multi-line hover: variant, lineage and config, quality with CI, latency percentiles, cost."""
    lines = [f"<b>{row.get('variant', '?')}</b> [{row.get('variant_id', '')}]", f"lineage: {lineage_text(row)}",
             f"{row.get('backend', '?')} / {row.get('device', '?')} / {row.get('precision', '?')}, "
             f"batch {row.get('batch_size', '?')} x {row.get('seq_len', '?')} tokens"]
    if is_number(row.get("quality")):
        ci = ""
        if is_number(row.get("quality_ci_low")) and is_number(row.get("quality_ci_high")):
            ci = f" (95% CI {row['quality_ci_low']:.4g}–{row['quality_ci_high']:.4g}, n={row.get('quality_n', '?')})"
        lines.append(f"{row.get('metric', 'quality')}: {row['quality']:.4g}{ci}")
    if is_number(row.get("latency_p50_ms")):
        pcts = "/".join(f"{row[k]:.3g}" for k in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")
                        if is_number(row.get(k)))
        lines.append(f"latency p50/p90/p99: {pcts} ms")
    for col in COST_COLUMNS:
        if is_number(row.get(col)):
            lines.append(f"{AXIS_LABELS[col]}: {row[col]:.4g}")
    return "<br>".join(lines)


def pareto_figure(rows, x: str = "latency_p50_ms", y: str = "quality", color: str | None = "auto",
                  batch_size: int | None = None, title: str | None = None, higher_is_better: bool | None = None):
    """Quality vs latency scatter, one trace per step family, with the Pareto front and the baseline marked.

    Args:
        rows: a ResultsTable or a list of row dicts.
        x / y: columns to plot (lower ``x`` is better; ``y``'s direction comes from ``higher_is_better``).
        color: a cost column to colour points by; "auto" picks one with :func:`cost_column`,
            None keeps family colours only. With a cost colour, the marker outline keeps the family colour.
        batch_size: keep only rows measured at this batch size.
        higher_is_better: direction of ``y`` for the front (default: the rows' ``higher_is_better`` flag).

    Example:
        >>> pareto_figure(ResultsTable.load("artifacts/quickstart")).show()   # doctest: +SKIP
    """
    import plotly.graph_objects as go

    usable = [r for r in _rows(rows) if is_number(r.get(x)) and is_number(r.get(y)) and not r.get("failed")
              and (batch_size is None or r.get("batch_size") == batch_size)]
    if color == "auto":
        color = cost_column(usable)
    fig = go.Figure()
    for fam in _families(usable):
        fig.add_trace(_family_trace(go, [r for r in usable if family(r) == fam], fam, x, y, color))
    # one front per comparable group (task, device, batch, length, machine): never a line across groups
    groups = group_rows(usable, PARETO_GROUP)
    labels = _group_labels(list(groups), PARETO_GROUP)
    for (key, group), dash in zip(groups.items(), _DASHES * len(groups)):
        front = pareto_front(group, x, y, higher_is_better, PARETO_GROUP)
        if front:
            name = "Pareto front" + (f" ({labels[key]})" if len(groups) > 1 else "")
            fig.add_trace(go.Scatter(x=[r[x] for r in front], y=[r[y] for r in front], mode="lines", name=name,
                                     line=dict(color="#222222", dash=dash, width=1.5), hoverinfo="skip"))
    for r in {r.get("variant_id"): r for r in usable if family(r) == "baseline"}.values():   # once per baseline
        fig.add_annotation(x=r[x], y=r[y], text=f"baseline {r.get('variant', '')}", showarrow=True, arrowhead=2,
                           ax=30, ay=-30, font=dict(size=11))
    if color:
        fig.update_layout(coloraxis=dict(colorscale="Viridis", colorbar=dict(
            title=axis_label(color), x=1.02, tickformat=COST_TICKFORMAT, exponentformat="none")))
    fig.update_layout(title=title or f"{axis_label(y, usable).split(' (')[0]} vs {axis_label(x)}",
                      xaxis_title=axis_label(x), yaxis_title=axis_label(y, usable), template="plotly_white",
                      legend=dict(title_text="step family", orientation="h", yanchor="top", y=-0.18, x=0),
                      hoverlabel=dict(align="left"), height=520)
    return fig


def language_model_rows(rows: list[dict]) -> bool:
    """Rows of a language model (generation points, or a perplexity metric): priced and plotted per token.
    Classifier rows carry tokens/s too (real tokens per batch), so that column alone does not tell."""
    return any(r.get("output_len") or r.get("metric") == "perplexity" for r in rows)


def cost_column(rows: list[dict]) -> str | None:
    """The cost to colour by: $ per 1M tokens for LMs, else $ per 1M requests (rows saved before that column
    existed: $ per 1k requests), else any cost column the rows have."""
    present = [c for c in COST_COLUMNS if any(is_number(r.get(c)) for r in rows)]
    if not present:
        return None
    preferred = ("usd_per_1m_tokens",) if language_model_rows(rows) else ("usd_per_1m_requests", "usd_per_1k_requests")
    return next((c for c in preferred if c in present), present[0])


_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")


def _group_labels(keys: list[tuple], columns: tuple[str, ...]) -> dict[tuple, str]:
    """Short labels of group keys naming only the columns whose values differ between the groups."""
    varying = [i for i, _c in enumerate(columns) if len({k[i] for k in keys}) > 1]
    return {k: ", ".join(_SPLIT_LABELS.get(columns[i], columns[i] + " {}").format("-" if k[i] is None else k[i])
                         for i in varying) for k in keys}


def _family_trace(go, rows: list[dict], fam: str, x: str, y: str, color: str | None):
    base = fam == "baseline"
    marker = dict(size=16 if base else 11, symbol="star" if base else "circle",
                  line=dict(color=family_color(fam), width=2.5 if color else 1))
    if color:
        marker.update(color=[r.get(color) if is_number(r.get(color)) else math.nan for r in rows], coloraxis="coloraxis")
    else:
        marker["color"] = family_color(fam)
    low = [r[y] - r["quality_ci_low"] if y == "quality" and is_number(r.get("quality_ci_low")) else 0 for r in rows]
    high = [r["quality_ci_high"] - r[y] if y == "quality" and is_number(r.get("quality_ci_high")) else 0 for r in rows]
    return go.Scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], mode="markers", name=fam, marker=marker,
                      error_y=dict(type="data", array=high, arrayminus=low, visible=any(low + high), thickness=1),
                      text=[hover_text(r) for r in rows], hovertemplate="%{text}<extra></extra>",
                      customdata=[r.get("variant_id") for r in rows])


def line_figure(rows, x: str, y: str, group: str = "variant", title: str | None = None, log_x: bool = False,
                hline: float | None = None, hline_label: str = "", split: tuple[str, ...] = LINE_SPLIT):
    """``y`` against ``x``, one line per ``group`` value (coloured by step family), units on both axes.

    Args:
        split: columns a line never crosses (default :data:`LINE_SPLIT`: variant id, device, batch size, sequence
            and output length, environment), ``x`` aside: each combination is its own line, named by what tells it
            apart from the other lines of the same ``group`` value. A point measured twice keeps its newest row.
        hline: draw a horizontal reference line (an SLO, a target) labelled ``hline_label``.

    Example:
        >>> line_figure(rows, "gamma", "tokens_per_s", group="variant")   # doctest: +SKIP
    """
    import plotly.graph_objects as go

    usable = [r for r in _rows(rows) if is_number(r.get(x)) and is_number(r.get(y)) and not r.get("failed")]
    keys = (group,) + tuple(k for k in split if k not in (x, group))
    lines = group_rows(usable, keys)
    names = _line_names(list(lines), keys)
    fig = go.Figure()
    for key, part in lines.items():
        part = sorted({r[x]: r for r in part}.values(), key=lambda r: r[x])   # the newest row of each x
        fig.add_trace(go.Scatter(x=[r[x] for r in part], y=[r[y] for r in part], mode="lines+markers", name=names[key],
                                 line=dict(color=family_color(family(part[0]))),
                                 text=[hover_text(r) for r in part], hovertemplate="%{text}<extra></extra>"))
    if y in COST_COLUMNS:
        fig.update_yaxes(tickformat=COST_TICKFORMAT, exponentformat="none")
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dot", line_color="#C00000", annotation_text=hline_label)
    fig.update_layout(title=title or f"{axis_label(y)} vs {axis_label(x)}", xaxis_title=axis_label(x),
                      yaxis_title=axis_label(y), template="plotly_white", hoverlabel=dict(align="left"), height=420)
    if log_x:   # powers of two read better than decades for batch sizes
        fig.update_xaxes(type="log", dtick=math.log10(2) if x == "batch_size" else None)
    return fig


def _line_names(keys: list[tuple], columns: tuple[str, ...]) -> dict[tuple, str]:
    """``str(group value)``, plus what tells the line apart from other lines of the same group value."""
    names = {}
    for key in keys:
        twins = [k for k in keys if k[0] == key[0]]
        suffix = _group_labels(twins, columns)[key] if len(twins) > 1 else ""
        names[key] = f"{key[0]} ({suffix})" if suffix else str(key[0])
    return names


def batching_figure(rows, slo_ms: float | None = None, latency: str = "latency_p50_ms",
                    throughput: str | None = None, title: str = "Latency and throughput vs batch size"):
    """Two panels against batch size: latency (with the SLO line) and throughput, one line per variant.

    Args:
        slo_ms: latency target drawn as a horizontal line on the latency panel.
        throughput: column for the right panel; default tokens/s when the rows have it, else items/s.

    Example:
        >>> batching_figure(ResultsTable.load("artifacts/sweep"), slo_ms=50).show()   # doctest: +SKIP
    """
    from plotly.subplots import make_subplots

    rows = _rows(rows)
    throughput = throughput or ("tokens_per_s" if language_model_rows(rows) else "throughput_per_s")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(axis_label(latency), axis_label(throughput)))
    for col, metric in ((1, latency), (2, throughput)):
        for trace in line_figure(rows, "batch_size", metric, group="variant").data:
            trace.showlegend = col == 1
            trace.legendgroup = trace.name
            fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(title_text=axis_label(metric), row=1, col=col)
        fig.update_xaxes(title_text=axis_label("batch_size"), type="log", dtick=math.log10(2), row=1, col=col)
    if slo_ms is not None:
        fig.add_hline(y=slo_ms, line_dash="dot", line_color="#C00000", annotation_text=f"SLO {slo_ms:g} ms", row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", hoverlabel=dict(align="left"), height=420)
    return fig


def figures_for(rows) -> list[tuple[str, object]]:
    """Every figure the measurement rows support, as (title, figure); load and LLM-serving rows are left to their
    own figures (the report draws those in their sections).

    Example:
        >>> for title, fig in figures_for(table): fig.show()   # doctest: +SKIP
    """
    from workbench.ui.report_sections import split_rows

    # load points and LLM arms have figures of their own (plots_load, plots_llm): a load point at "batch 1" is not a
    # batch-size point, and an arm's row has no quality or shape to place it here
    rows = split_rows([r for r in _rows(rows) if not r.get("failed")])[0]
    out = []
    scored = [r for r in rows if is_number(r.get("quality")) and is_number(r.get("latency_p50_ms"))]
    if scored:
        out.append((f"{axis_label('quality', scored).split(' (')[0]} vs p50 latency (Pareto front)",
                    pareto_figure(rows)))
    per_variant: dict[str, set] = {}
    for r in rows:
        if is_number(r.get("latency_p50_ms")) and r.get("batch_size") is not None:
            per_variant.setdefault(r.get("variant_id") or r.get("variant"), set()).add(r["batch_size"])
    if any(len(b) > 1 for b in per_variant.values()):
        out.append(("Latency and throughput vs batch size", batching_figure(rows)))
        cost = cost_column(rows)
        costed = [r for r in rows if cost and is_number(r.get(cost))]
        if len({(r.get("variant_id"), r.get("batch_size")) for r in costed}) > len({r.get("variant_id") for r in costed}):
            out.append((f"{axis_label(cost)} vs batch size", line_figure(costed, "batch_size", cost, log_x=True)))
    if any(is_number(r.get("size_mb")) and is_number(r.get("latency_p50_ms")) for r in rows):
        out.append(("Size vs latency", pareto_figure(rows, y="size_mb", color=None, higher_is_better=False,
                                                   title="Model size vs p50 latency")))
    return out


def _families(rows: list[dict]) -> list[str]:
    names = list(dict.fromkeys(family(r) for r in rows))
    return sorted(names, key=lambda n: (n != "baseline", n))


def _rows(rows) -> list[dict]:
    return list(rows.rows if hasattr(rows, "rows") else rows)


__all__ = ["pareto_figure", "line_figure", "batching_figure", "figures_for", "family_color", "axis_label",
           "hover_text", "lineage_text", "config_changes", "cost_column", "FAMILY_COLORS", "COST_COLUMNS"]
