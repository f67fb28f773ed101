"""Streaming LM under load, from ``scenario: "load-stream"`` rows (``workbench load`` on a causal-LM bundle).

Top: time to first token against the offered rate (p50 to the highest tail percentile the point has samples for,
p99 when it has 200, else p90), the TTFT SLO and the goodput marked. Bottom: time per output token (p50 and p90),
so a user sees whether load hurts the first token (queueing) or every token (contention). Pure functions of rows.
Failed or timed-out streams are counted, not plotted; the axes follow the plotted values (see ``plots_load``).
"""
from __future__ import annotations

from workbench.ui.plots_load import (COLOURS, goodput_of, latency, latency_axis, misses_note, misses_text,
                                     slo_line)


def stream_rows(rows) -> dict[str, list[dict]]:
    """``{served model: its load-stream rows by offered rate}`` (a rate measured twice: the later row)."""
    out: dict[str, dict[float, dict]] = {}
    for r in rows:
        if r.get("scenario") == "load-stream" and r.get("offered_rate_per_s") is not None:
            name = r.get("variant") or r.get("model") or "?"
            out.setdefault(name, {})[r["offered_rate_per_s"]] = r
    return {k: [v[rate] for rate in sorted(v)] for k, v in out.items()}


def _tail(row: dict, prefix: str) -> tuple[float | None, str]:
    """The highest percentile this point has enough samples for (p99 needs 200, p90 20)."""
    for name in ("p99", "p90"):
        if latency(row.get(f"{prefix}_{name}_ms")) is not None:
            return row[f"{prefix}_{name}_ms"], name
    return None, "-"


def stream_load_figure(rows, title: str | None = None):
    """TTFT band (p50..tail) and TPOT (p50, p90) vs offered requests/s, the TTFT SLO line, goodput starred.

    Raises:
        ValueError: no ``load-stream`` rows (run ``workbench load`` on a causal-LM bundle first).
    """
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    groups = stream_rows(rows)
    if not groups:
        raise ValueError("no streaming load rows (scenario 'load-stream') to plot: run `workbench load BUNDLE "
                         "--slo-ms ...` on a causal-LM bundle first")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.07)
    ttft, tpot = [], []
    for k, (name, pts) in enumerate(groups.items()):
        colour, x = COLOURS[k % len(COLOURS)], [r["offered_rate_per_s"] for r in pts]
        tails = [_tail(r, "ttft") for r in pts]
        p50 = [latency(r.get("ttft_p50_ms")) for r in pts]
        ttft += p50 + [t for t, _ in tails]
        fig.add_trace(go.Scatter(x=x, y=p50, mode="lines+markers",
                                 name=f"{name}: TTFT p50", line=dict(color=colour), legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[t for t, _ in tails], mode="lines+markers", fill="tonexty", opacity=0.5,
                                 name=f"{name}: TTFT tail", line=dict(color=colour, dash="dash"), legendgroup=name,
                                 text=["; ".join(t for t in (p, misses_text(r), "" if r.get("valid", True)
                                                             else "client-limited (not valid)") if t)
                                       for (_, p), r in zip(tails, pts)]), row=1, col=1)
        good = goodput_of(pts)
        if good is not None:
            at = next(r for r in pts if r["offered_rate_per_s"] == good)
            fig.add_trace(go.Scatter(x=[good], y=[latency(at.get("ttft_p50_ms"))], mode="markers+text",
                                     legendgroup=name,
                                     marker=dict(symbol="star", size=14, color=colour), text=[f"goodput {good:g}/s"],
                                     textposition="top left", name=f"{name}: goodput"), row=1, col=1)
        for pct, dash in (("p50", None), ("p90", "dot")):
            values = [latency(r.get(f"tpot_{pct}_ms")) for r in pts]
            tpot += values
            fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers",
                                     name=f"{name}: TPOT {pct}", line=dict(color=colour, dash=dash),
                                     legendgroup=name), row=2, col=1)
    slo = next((r.get("slo_ms") for pts in groups.values() for r in pts if r.get("slo_ms")), None)
    axis = latency_axis(ttft, slo)
    if slo:
        slo_line(fig, slo, f"TTFT SLO {slo:g} ms", axis)
    title = (title or "Streaming LM under load (open loop, from scheduled send)") + misses_note(
        [r for pts in groups.values() for r in pts])
    fig.update_layout(title=title, height=560, legend=dict(font=dict(size=10)))
    fig.update_yaxes(title_text="time to first token (ms)", **axis, row=1, col=1)
    fig.update_yaxes(title_text="time per output token (ms)", **latency_axis(tpot), row=2, col=1)
    fig.update_xaxes(title_text="offered load (requests/s)", row=2, col=1)
    return fig


__all__ = ["stream_load_figure", "stream_rows"]
