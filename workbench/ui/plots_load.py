"""Latency vs offered load, from ``scenario: "load"`` rows (``workbench load``, ``search_config``).

Top: the p50..p99 band per served config against the offered rate, the SLO line and the goodput marked. Bottom: where
a request's time went inside Triton (queue vs compute, from its statistics), stacked per offered rate. Pure
functions of result rows, like every figure in ``workbench.ui``.
"""
from __future__ import annotations

from workbench.serving.load.sweep import goodput_of   # one definition of goodput, shared with the sweeps

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


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
    for k, (name, pts) in enumerate(ranked):
        colour, x = COLOURS[k % len(COLOURS)], [r["offered_rate_per_s"] for r in pts]
        p50 = [r.get("latency_p50_ms") for r in pts]
        p99 = [r.get("latency_p99_ms") for r in pts]
        fig.add_trace(go.Scatter(x=x, y=p50, mode="lines+markers", name=f"{name}: p50", line=dict(color=colour),
                                 legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=p99, mode="lines+markers", name=f"{name}: p99", fill="tonexty",
                                 line=dict(color=colour, dash="dash"), legendgroup=name, opacity=0.5,
                                 text=[("" if r.get("valid", True) else "client-bound (not valid)") for r in pts]),
                      row=1, col=1)
        good = goodput_of(pts)
        if good is not None:
            at = next(r for r in pts if r["offered_rate_per_s"] == good)
            fig.add_trace(go.Scatter(x=[good], y=[at.get("latency_p99_ms")], mode="markers+text",
                                     marker=dict(symbol="star", size=14, color=colour), text=[f"goodput {good:g}/s"],
                                     textposition="top left", name=f"{name}: goodput", legendgroup=name), row=1, col=1)
        if k == 0:  # queue vs compute of the best curve (stacking several curves' bars would not read)
            for part, shade in (("server_compute_ms", "#7f7f7f"), ("server_queue_ms", "#bcbd22")):
                fig.add_trace(go.Bar(x=x, y=[r.get(part) for r in pts], marker_color=shade,
                                     name=f"{name}: Triton {part.split('_')[1]}"), row=2, col=1)
    slo = next((r.get("slo_ms") for r in load_rows(rows) if r.get("slo_ms")), None)
    if slo:
        fig.add_hline(y=slo, line=dict(color="black", dash="dot"), annotation_text=f"SLO {slo:g} ms", row=1, col=1)
    fig.update_layout(barmode="stack", title=title or "Latency vs offered load (open loop, from scheduled send)",
                      height=620, legend=dict(font=dict(size=10)))
    fig.update_yaxes(title_text="latency (ms)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="in Triton per request (ms)", row=2, col=1)
    fig.update_xaxes(title_text="offered load (requests/s)", row=2, col=1)
    return fig


__all__ = ["load_figure", "curves", "goodput_of", "load_rows"]
