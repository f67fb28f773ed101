"""Latency vs offered load, from ``scenario: "load"`` rows (``workbench load``, ``search_config``).

Top: the p50..p99 band per served config against the offered rate, the SLO line and the goodput marked. Bottom: where
a request's time went inside Triton (queue vs compute, from its statistics), stacked per offered rate. Pure
functions of result rows, like every figure in ``workbench.ui``.

A request that failed or timed out has no latency: it is counted (``errors``, ``timeouts`` per point, in the hover
and under the title), never drawn as a number. The latency axis is logarithmic only where the plotted values span
more than :data:`LOG_SPAN`, and its range is set from the plotted values and the SLO.
"""
from __future__ import annotations

import math

from workbench.serving.load.sweep import goodput_of   # one definition of goodput, shared with the sweeps
from workbench.util.numbers import is_number

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
LOG_SPAN = 20.0   # max / min of the plotted latencies above which the axis is logarithmic


def latency(value) -> float | None:
    """A latency to plot: a finite positive number of ms, else None (a gap: no sample, or a miss saved as inf)."""
    return float(value) if is_number(value) and value > 0 else None


def latency_axis(values, slo_ms: float | None = None) -> dict:
    """``type`` and ``range`` of a latency axis holding ``values`` (and the SLO line): log where they span more than
    LOG_SPAN, else linear from 0; the range comes from the values, so nothing else (a label, a stray point) sets it."""
    plotted = [v for v in map(latency, values) if v is not None] + ([slo_ms] if latency(slo_ms) else [])
    if not plotted:
        return {"type": "linear"}
    low, high = min(plotted), max(plotted)
    if high / low > LOG_SPAN:
        return {"type": "log", "range": [math.log10(low) - 0.1, math.log10(high) + 0.1]}
    return {"type": "linear", "range": [0.0, high * 1.08]}


def slo_line(fig, slo_ms: float, label: str, axis: dict, row: int = 1, col: int = 1) -> None:
    """A dotted SLO line with its label. The label is placed by hand: plotly.js reads an annotation's y on a log
    axis as log10 of the value, so ``add_hline(annotation_text=...)`` put "SLO 35 ms" at 1e35 ms and the axis
    stretched to reach it."""
    fig.add_hline(y=slo_ms, line=dict(color="black", dash="dot"), row=row, col=col)
    yref = fig.get_subplot(row, col).yaxis.plotly_name.replace("axis", "")
    y = math.log10(slo_ms) if axis.get("type") == "log" else slo_ms
    fig.add_annotation(x=1, xref=f"{yref.replace('y', 'x')} domain", y=y, yref=yref, text=label, showarrow=False,
                       xanchor="right", yanchor="bottom", font=dict(size=11))


def misses_text(row: dict) -> str:
    """Errors and timeouts of one point, counted (they have no latency)."""
    errors, timeouts = row.get("errors") or 0, row.get("timeouts") or 0
    return f"{errors} errors, {timeouts} timeouts (counted, not plotted)" if errors or timeouts else ""


def misses_note(rows: list[dict]) -> str:
    """One line for the title: how many requests failed or timed out over the drawn points (empty: none did)."""
    errors = sum(r.get("errors") or 0 for r in rows)
    timeouts = sum(r.get("timeouts") or 0 for r in rows)
    if not errors and not timeouts:
        return ""
    points = sum(1 for r in rows if r.get("errors") or r.get("timeouts"))
    return (f"<br><sup>{errors} errors and {timeouts} timeouts at {points} point{'s' if points != 1 else ''}: "
            "counted, not drawn (they have no latency)</sup>")


def load_rows(rows) -> list[dict]:
    """Valid-or-not load points, sorted by offered rate."""
    return sorted((r for r in rows if r.get("scenario") == "load" and r.get("offered_rate_per_s") is not None),
                  key=lambda r: r["offered_rate_per_s"])


def curve_key(row: dict) -> str:
    """What one curve is: the served variant and its serving config."""
    return f"{row.get('variant') or row.get('model') or '?'} | {row.get('serving_config') or 'bundle config'}"


def curves(rows) -> dict[str, list[dict]]:
    """``{curve name: its load rows by rate}`` (a rate measured twice: the later row)."""
    out: dict[str, dict[float, dict]] = {}
    for r in load_rows(rows):
        out.setdefault(curve_key(r), {})[r["offered_rate_per_s"]] = r
    return {k: [v[rate] for rate in sorted(v)] for k, v in out.items()}


def load_figure(rows, title: str | None = None, max_curves: int = 4):
    """p50/p99 bands vs offered rate, the SLO, goodput marked; server queue vs compute stacked underneath.

    Args:
        rows: result rows; only ``scenario: "load"`` rows are drawn.
        max_curves: draw at most this many curves (the ones reaching the highest goodput first).

    Raises:
        ValueError: no load rows (run ``workbench load`` first).
    """
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    groups = curves(rows)
    if not groups:
        raise ValueError("no load rows (scenario 'load') to plot: run `workbench load BUNDLE --slo-ms ...` first")
    ranked = sorted(groups.items(), key=lambda kv: -(goodput_of(kv[1]) or 0.0))[:max_curves]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    plotted: list = []
    for k, (name, pts) in enumerate(ranked):
        colour, x = COLOURS[k % len(COLOURS)], [r["offered_rate_per_s"] for r in pts]
        p50 = [latency(r.get("latency_p50_ms")) for r in pts]
        p99 = [latency(r.get("latency_p99_ms")) for r in pts]
        plotted += p50 + p99
        fig.add_trace(go.Scatter(x=x, y=p50, mode="lines+markers", name=f"{name}: p50", line=dict(color=colour),
                                 legendgroup=name), row=1, col=1)
        notes = ["; ".join(t for t in (misses_text(r), "" if r.get("valid", True) else "client-limited (not valid)")
                           if t) for r in pts]
        fig.add_trace(go.Scatter(x=x, y=p99, mode="lines+markers", name=f"{name}: p99", fill="tonexty",
                                 line=dict(color=colour, dash="dash"), legendgroup=name, opacity=0.5, text=notes),
                      row=1, col=1)
        good = goodput_of(pts)
        if good is not None:
            at = next(r for r in pts if r["offered_rate_per_s"] == good)
            fig.add_trace(go.Scatter(x=[good], y=[latency(at.get("latency_p99_ms"))], mode="markers+text",
                                     marker=dict(symbol="star", size=14, color=colour), text=[f"goodput {good:g}/s"],
                                     textposition="top left", name=f"{name}: goodput", legendgroup=name), row=1, col=1)
        if k == 0:  # queue vs compute of the best curve (stacking several curves' bars would not read)
            for part, shade in (("server_compute_ms", "#7f7f7f"), ("server_queue_ms", "#bcbd22")):
                fig.add_trace(go.Bar(x=x, y=[r.get(part) for r in pts], marker_color=shade,
                                     name=f"{name}: Triton {part.split('_')[1]}"), row=2, col=1)
    slo = next((r.get("slo_ms") for r in load_rows(rows) if r.get("slo_ms")), None)
    axis = latency_axis(plotted, slo)
    if slo:
        slo_line(fig, slo, f"SLO {slo:g} ms", axis)
    title = (title or "Latency vs offered load (open loop, from scheduled send)") + misses_note(
        [r for _n, pts in ranked for r in pts])
    fig.update_layout(barmode="stack", title=title, height=620, legend=dict(font=dict(size=10)))
    fig.update_yaxes(title_text="latency (ms)", **axis, row=1, col=1)
    fig.update_yaxes(title_text="in Triton per request (ms)", row=2, col=1)
    fig.update_xaxes(title_text="offered load (requests/s)", row=2, col=1)
    return fig


__all__ = ["load_figure", "curves", "goodput_of", "load_rows", "latency", "latency_axis", "slo_line", "misses_text",
           "misses_note", "LOG_SPAN"]
