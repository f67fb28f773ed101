"""Views of LLM serving rows (:func:`workbench.ui.llm_panel.run_arms`): TTFT vs TPOT, token rates by phase,
$ per 1M tokens by kind, perplexity change vs fp32, and the plain-text table. Pure functions of rows; plotly is
imported inside.

Example:
    >>> ttft_tpot_figure(rows).show(); cost_figure(rows).show()     # doctest: +SKIP
"""
from __future__ import annotations

# The ``scenario`` of the rows run_arms writes (workbench.ui.llm_panel.SCENARIO; that module imports torch, so the
# report, which only reads rows, names it here; tests/ui/test_plots_llm.py checks the two agree).
SCENARIO = "llm-serving"

TABLE_COLUMNS = ("arm", "available", "ttft_ms", "tpot_ms", "output_tokens_per_s", "prompt_tokens_per_s",
                 "usd_per_1m_output_tokens", "usd_per_1m_prompt_tokens", "usd_per_1m_prompt_tokens_prefix_cached",
                 "ppl_increase_pct", "ppl_increase_ci_pct", "token_agreement_vs_fp32", "bandwidth_utilisation",
                 "first_call_s", "compile_seconds", "ttft_ratio", "reason")
# (column, bar label): the token kinds an LLM bill splits into
COST_KINDS = (("usd_per_1m_output_tokens", "output tokens"),
              ("usd_per_1m_prompt_tokens", "prompt tokens, uncached"),
              ("usd_per_1m_prompt_tokens_prefix_cached", "prompt tokens, shared prefix cached"))


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def llm_rows(rows) -> list[dict]:
    """The LLM-serving rows among ``rows`` (one per arm, priced per token): the report draws them apart."""
    return [r for r in rows if r.get("scenario") == SCENARIO]


def measured(rows) -> list[dict]:
    return [r for r in rows if r.get("available", True) and not r.get("failed")]


def unavailable_note(rows) -> str:
    """One line per arm that did not run here, with its reason (shown under the figures)."""
    return "<br>".join(f"not run here: {r['arm']}: {r.get('reason', '')[:120]}" for r in rows
                       if not r.get("available", True))


def _note(fig, rows) -> None:
    note = unavailable_note(rows)
    if note:
        fig.add_annotation(text=note, xref="paper", yref="paper", x=0, y=-0.28, showarrow=False, align="left",
                           font={"size": 10, "color": "#666666"})
        fig.update_layout(margin={"b": 140})


def ttft_tpot_figure(rows, title: str | None = None):
    """One marker per measured arm: p50 time to first token (x) vs p50 time per output token (y); lower-left wins.

    Hover gives the decode rate, $ per 1M output tokens and the perplexity change vs fp32 where measured.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in (r for r in measured(rows) if r.get("ttft_ms") is not None and r.get("tpot_ms") is not None):
        hover = (f"{_f(r.get('output_tokens_per_s'))} output tokens/s in decode, "
                 f"${_f(r.get('usd_per_1m_output_tokens'))} per 1M output tokens, "
                 f"perplexity {_f(r.get('ppl_increase_pct'))}% vs fp32")
        fig.add_trace(go.Scatter(x=[r["ttft_ms"]], y=[r["tpot_ms"]], mode="markers+text", name=r["arm"],
                                 text=[r["arm"]], textposition="top center", marker={"size": 12},
                                 customdata=[hover],
                                 hovertemplate="TTFT %{x:.2f} ms, TPOT %{y:.2f} ms<br>%{customdata}<extra></extra>"))
    fig.update_layout(title=title or "Time to first token vs time per output token (batch 1, p50 over prompts)",
                      xaxis_title="time to first token, TTFT (ms)", yaxis_title="time per output token, TPOT (ms)",
                      template="plotly_white", height=440, showlegend=False)
    _note(fig, rows)
    return fig


def cost_figure(rows, title: str | None = None):
    """Grouped bars: $ per 1M output tokens and per 1M prompt tokens (uncached, and with the shared prefix cached)
    for each measured arm, on the rows' instance."""
    import plotly.graph_objects as go

    ok = measured(rows)
    fig = go.Figure()
    for column, label in COST_KINDS:
        part = [r for r in ok if r.get(column) is not None]
        if part:
            fig.add_trace(go.Bar(x=[r["arm"] for r in part], y=[r[column] for r in part], name=label,
                                 hovertemplate="%{x}: $%{y:.4g} per 1M " + label + "<extra></extra>"))
    where = next((f"{r['instance']} at ${r['usd_per_hour']}/h" for r in ok if r.get("instance")), "the chosen instance")
    fig.update_layout(title=title or f"Self-hosted cost per 1M tokens on {where} (100% busy)", barmode="group",
                      xaxis_title="arm", yaxis_title="cost per 1M tokens (USD)", template="plotly_white", height=420)
    _note(fig, rows)
    return fig


def rate_figure(rows, title: str | None = None):
    """Grouped bars per measured arm: prompt tokens/s (prefill, from TTFT) and output tokens/s (decode, from TPOT).
    The two phases are bound by different things (compute vs memory bandwidth), so they are shown apart."""
    import plotly.graph_objects as go

    ok = measured(rows)
    fig = go.Figure()
    for column, label in (("prompt_tokens_per_s", "prompt tokens/s (prefill)"),
                          ("output_tokens_per_s", "output tokens/s (decode)")):
        part = [r for r in ok if r.get(column) is not None]
        if part:
            fig.add_trace(go.Bar(x=[r["arm"] for r in part], y=[r[column] for r in part], name=label,
                                 hovertemplate="%{x}: %{y:.4g} " + label + "<extra></extra>"))
    fig.update_layout(title=title or "Tokens per second by phase (batch 1, one request after another)",
                      barmode="group", xaxis_title="arm", yaxis_title="tokens per second", template="plotly_white",
                      height=400)
    _note(fig, rows)
    return fig


def ppl_figure(rows, title: str | None = None):
    """Perplexity increase vs fp32 (%) with its paired 95% CI, for the arms where it was measured."""
    import plotly.graph_objects as go

    part = [r for r in measured(rows) if r.get("ppl_increase_pct") is not None]
    low = [r["ppl_increase_pct"] - r["ppl_increase_ci_pct"][0] for r in part]
    high = [r["ppl_increase_ci_pct"][1] - r["ppl_increase_pct"] for r in part]
    fig = go.Figure(go.Bar(x=[r["arm"] for r in part], y=[r["ppl_increase_pct"] for r in part],
                           error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low},
                           hovertemplate="%{x}: %{y:.3f}% perplexity vs fp32<extra></extra>"))
    fig.add_hline(y=0.0, line_color="#888888")
    fig.update_layout(title=title or "Perplexity change vs fp32 (paired over the same blocks, 95% CI)",
                      xaxis_title="arm", yaxis_title="perplexity increase vs fp32 (%)", template="plotly_white",
                      height=380)
    return fig


def summary_table(rows, columns=TABLE_COLUMNS) -> str:
    from workbench.results import ResultsTable

    return ResultsTable(rows=rows).to_text(columns)
