"""The hardware figure of a multi-machine study: cost per 1M requests against tail latency, one colour per instance.

Kept apart from ``plots.py`` (one figure family per module); like every figure here it is a pure function of rows.
"""
from __future__ import annotations

from workbench.ui.plots import AXIS_LABELS, COST_TICKFORMAT, family_color


def hardware_figure(rows, slo_ms: float | None = None, percentile: str = "p99", utilisation: float = 1.0):
    """$ per 1M requests (each row priced with its own instance) vs ``percentile`` latency, one trace per instance,
    the SLO drawn as a vertical line. Rows whose percentile has too few calls behind it are left out.

    Example:
        >>> fig = hardware_figure(table.rows, slo_ms=50)      # doctest: +SKIP
    """
    import plotly.graph_objects as go

    from workbench.cluster.cheapest import priced_rows
    from workbench.measure.slo import tail_latency_ms

    fig = go.Figure()
    by_instance: dict[str, list] = {}
    for row in priced_rows(rows, utilisation):
        latency = tail_latency_ms(row, percentile)
        if latency is not None:
            by_instance.setdefault(row["instance"], []).append((latency, row))
    for instance, points in sorted(by_instance.items()):
        points.sort(key=lambda p: p[0])
        fig.add_trace(go.Scatter(
            x=[p[0] for p in points], y=[p[1]["usd_per_1m_requests"] for p in points], mode="markers", name=instance,
            marker={"size": 10, "color": family_color(instance)},
            text=[f"{p[1].get('variant_name') or p[1].get('variant')} batch {p[1].get('batch_size')} on {instance}"
                  for p in points], hovertemplate="%{text}<br>%{x:.2f} ms, $%{y:.4g} per 1M requests<extra></extra>"))
    if slo_ms:
        fig.add_vline(x=slo_ms, line_dash="dash", annotation_text=f"SLO {percentile} {slo_ms} ms")
    fig.update_layout(title="Cost per request by hardware", xaxis_title=f"{percentile} latency (ms)",
                      yaxis_title=AXIS_LABELS["usd_per_1m_requests"], legend_title="instance")
    fig.update_yaxes(tickformat=COST_TICKFORMAT)
    return fig


__all__ = ["hardware_figure"]
