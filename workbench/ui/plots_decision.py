"""The Pareto front of a `workbench optimize` decision: tail latency at the SLO percentile vs quality drop.

Pure functions of ``decision.json`` (or of the rows arriving live); plotly is imported inside. One marker per arm
and batch size (a trace per arm, the batch size written on the marker), the pick drawn larger, the cost per
instance in the hover, the SLO as a vertical line and the allowed drop as a horizontal one, so a reader sees which
points sit inside both limits.

Example:
    >>> pareto_decision_figure(json.load(open("artifacts/opt/decision.json"))).show()   # doctest: +SKIP
"""
from __future__ import annotations

from workbench.util.numbers import format_value

SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down", "pentagon", "hexagon", "star")


def drop_axis_title(metric: str | None) -> str:
    """The y axis of a drop, in the unit ``arms.rows`` measures it in: accuracy points, else the metric's own."""
    if metric in (None, "accuracy"):
        return "quality drop vs baseline (accuracy points, + is worse)"
    return f"{metric} change vs baseline ({metric} units, + is worse)"


def cost_text(costs: dict | None, unit: str) -> str:
    """"$0.42 on c7i.large, — on g6.xlarge (USD per 1M requests)": absent costs stay absent, never $0."""
    if not costs:
        return f"cost not measured ({unit})"
    return ", ".join(f"{'—' if v is None else '$' + format_value(v, 3)} on {k}" for k, v in costs.items()) + f" ({unit})"


def pareto_decision_figure(decision: dict, title: str | None = None):
    """The decision's Pareto points: x tail latency (ms) at the SLO percentile, y quality drop; SLO and limit lines."""
    pick = decision.get("pick") or {}
    points = [dict(p, picked=(p.get("arm"), p.get("batch_size")) == (pick.get("arm"), pick.get("batch_size")))
              for p in decision.get("pareto") or []]
    return points_figure(points, slo=decision.get("slo") or {}, max_drop=decision.get("max_drop"),
                         metric=(pick.get("quality") or {}).get("metric"),
                         unit=decision.get("cost_unit") or "USD per 1M requests",
                         title=title or "Pareto front: tail latency at the SLO percentile vs quality drop")


def points_figure(points: list[dict], slo: dict, max_drop: float | None, metric: str | None, unit: str,
                  title: str):
    """Points ``{arm, batch_size, tail_ms, quality_drop, usd_per_1m, picked}``; those missing either figure are
    left out (a point without a measured drop is not drawn at 0)."""
    import plotly.graph_objects as go

    percentile = slo.get("percentile") or "tail"
    fig = go.Figure()
    drawn = [p for p in points if p.get("tail_ms") is not None and p.get("quality_drop") is not None]
    arms = list(dict.fromkeys(p.get("arm") for p in drawn))
    for i, arm in enumerate(arms):
        own = [p for p in drawn if p.get("arm") == arm]
        fig.add_trace(go.Scatter(
            x=[p["tail_ms"] for p in own], y=[p["quality_drop"] for p in own], mode="markers+text", name=str(arm),
            text=[f"b{format_value(p.get('batch_size'))}" for p in own], textposition="top center",
            marker={"symbol": SYMBOLS[i % len(SYMBOLS)], "size": [18 if p.get("picked") else 11 for p in own],
                    "line": {"width": [3 if p.get("picked") else 0 for p in own], "color": "#222"}},
            customdata=[[format_value(p.get("batch_size")), cost_text(p.get("usd_per_1m"), unit),
                         " (the pick)" if p.get("picked") else ""] for p in own],
            hovertemplate=(f"<b>{arm}</b>%{{customdata[2]}}, batch %{{customdata[0]}}<br>{percentile} %{{x:.3g}} ms, "
                           "drop %{y:.3g}<br>%{customdata[1]}<extra></extra>")))
    if slo.get("ms") is not None:
        fig.add_shape(type="line", xref="x", yref="paper", x0=slo["ms"], x1=slo["ms"], y0=0, y1=1,
                      line={"color": "#b00", "dash": "dash"})
        fig.add_annotation(x=slo["ms"], y=1, xref="x", yref="paper", showarrow=False, yanchor="bottom",
                           text=f"SLO {percentile} {format_value(slo['ms'], 4)} ms", font={"color": "#b00"})
    if max_drop is not None and drawn:
        fig.add_shape(type="line", xref="paper", yref="y", x0=0, x1=1, y0=max_drop, y1=max_drop,
                      line={"color": "#888", "dash": "dot"})
        fig.add_annotation(x=0, y=max_drop, xref="paper", yref="y", showarrow=False, xanchor="left",
                           yanchor="bottom", text=f"max drop {format_value(max_drop, 3)}", font={"color": "#666"})
    # plotly's autorange takes the data but not always the limit lines: span both, with its usual padding
    xs = [p["tail_ms"] for p in drawn] + ([slo["ms"]] if slo.get("ms") is not None else [])
    ys = [p["quality_drop"] for p in drawn] + ([max_drop] if max_drop is not None and drawn else [])
    fig.update_layout(title=title, template="plotly_white", height=460, legend_title_text="arm (b = batch size)",
                      xaxis_title=f"tail latency at {percentile} (ms)", yaxis_title=drop_axis_title(metric))
    if xs:
        low, high = _padded(min(xs), max(xs))
        fig.update_xaxes(range=[max(low, 0.0), high])   # latency is never negative
    if ys:
        fig.update_yaxes(range=_padded(min(ys), max(ys)))
    return fig


def _padded(low: float, high: float) -> list[float]:
    """[low, high] widened by 8% of the span on each side (a flat span by 1 unit), as plotly pads its autorange."""
    span = (high - low) or max(abs(high), 1.0)
    return [low - 0.08 * span, high + 0.08 * span]


__all__ = ["pareto_decision_figure", "points_figure", "drop_axis_title", "cost_text"]
