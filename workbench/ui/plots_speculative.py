"""Speculative-decoding figures: pure functions from generation rows (``workbench.measure.generation``) to plotly.

They read the generation scenario's own columns (gamma, alpha, c, accept_hist), so they live beside the general
figures of :mod:`workbench.ui.plots` rather than in it. Plotly is imported inside.

Example:
    >>> speedup_figure(rows).show()                     # doctest: +SKIP
    >>> acceptance_figure(rows, "draft-model", 4).show()  # doctest: +SKIP
"""
from __future__ import annotations

DRAFTER_COLORS = {"draft-model": "#0072B2", "prompt-lookup": "#D55E00"}


def _f(value, digits: int = 3) -> str:
    """A number for a label; None (nothing measured, e.g. alpha when no draft was ever tested) reads n/a."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spec_rows(rows, temperature: float | None = None) -> list[dict]:
    """Measured speculative rows (failed points, e.g. a broken timer, carry no figures and are left out)."""
    rows = [r for r in rows if r.get("scenario") == "generation-speculative" and not r.get("failed")]
    return [r for r in rows if temperature is None or r.get("temperature") == temperature]


def speedup_figure(rows, temperature: float = 0.0, title: str | None = None):
    """Measured (solid) and predicted (dotted) decode speedup over the target alone vs gamma, one colour per drafter.

    Both are decode-only (prefill apart). The prediction is ``E_K[(1 - alpha^(K+1)) / (1 - alpha)] / (m c + 1)``
    with alpha, c, the proposal lengths K actually drafted and the drafter calls per round m measured in the same run
    (with K = m = gamma, the textbook formula); the grey line at 1 is break-even.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    spec = _spec_rows(rows, temperature)
    for drafter in dict.fromkeys(r["drafter"] for r in spec):
        part = sorted((r for r in spec if r["drafter"] == drafter), key=lambda r: r["gamma"])
        color = DRAFTER_COLORS.get(drafter, "#444444")
        hover = [f"alpha {_f(r['alpha'])}, c {_f(r['c'])}, {_f(r['tokens_per_s'], 1)} tokens/s decode "
                 f"({_f(r.get('e2e_speedup'), 2)}x end to end), {_f(r['tokens_per_target_call'], 2)} tokens per "
                 f"target call, {_f(r.get('mean_proposed_per_round'), 2)} drafts proposed per round" for r in part]
        fig.add_trace(go.Scatter(x=[r["gamma"] for r in part], y=[r["speedup"] for r in part], mode="lines+markers",
                                 name=f"{drafter} measured", line=dict(color=color), text=hover,
                                 hovertemplate="gamma %{x}: %{y:.2f}x<br>%{text}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[r["gamma"] for r in part], y=[r["predicted_speedup"] for r in part],
                                 mode="lines+markers", name=f"{drafter} predicted", line=dict(color=color, dash="dot"),
                                 marker=dict(symbol="circle-open")))
    fig.add_hline(y=1.0, line_dash="dash", line_color="#888888", annotation_text="target alone (break-even)")
    fig.update_layout(title=title or f"Speedup vs gamma (temperature {temperature:g}, batch 1)",
                      xaxis_title="gamma (drafted tokens per round)",
                      yaxis_title="decode speedup over the target alone (x, tokens/s ratio)", template="plotly_white",
                      height=420)
    return fig


def acceptance_figure(rows, drafter: str = "draft-model", gamma: int | None = None, temperature: float = 0.0):
    """Histogram of drafted tokens accepted per target call (0..gamma) for one arm (default: its largest gamma)."""
    import plotly.graph_objects as go

    spec = [r for r in _spec_rows(rows, temperature) if r["drafter"] == drafter]
    if not spec:
        raise ValueError(f"no speculative rows for drafter {drafter!r} at temperature {temperature}: run the sweep first")
    row = next((r for r in spec if r["gamma"] == gamma), None) if gamma is not None else max(spec, key=lambda r: r["gamma"])
    if row is None:
        raise ValueError(f"gamma {gamma} not measured for {drafter}: pick one of {sorted(r['gamma'] for r in spec)}")
    hist = row["accept_hist"]
    total = sum(hist)
    fig = go.Figure(go.Bar(x=list(range(len(hist))), y=[h / total for h in hist], marker_color=DRAFTER_COLORS.get(drafter),
                           text=hist, hovertemplate="%{x} accepted: %{y:.1%} of rounds (%{text} rounds)<extra></extra>"))
    fig.update_layout(title=f"Accepted drafts per target call: {drafter}, gamma {row['gamma']} "
                            f"(alpha {_f(row['alpha'], 2)}, {total} target calls)",
                      xaxis_title="drafted tokens accepted in the round (tokens)",
                      yaxis_title="share of target calls (fraction)", template="plotly_white", height=380)
    return fig
