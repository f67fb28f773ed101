"""The report's sections by scenario: which rows each holds, its figures and a table whose columns follow it.

A study can mix scenarios (notebook 08: a batching sweep, load points and the serving-config search; notebook 07:
one LLM-serving row per arm). Each kind of row is drawn and tabulated with its own columns, so a load point never
lands in a batch-size figure and an LLM arm is read in tokens, TTFT and TPOT rather than items/s.
"""
from __future__ import annotations

import html

from workbench.ui.plots_llm import llm_rows
from workbench.util.numbers import format_value

LOAD_SCENARIOS = ("load", "load-stream", "load-search")
# a speculative-decoding study: its arms and the target alone they are compared with (notebook 06)
SPECULATIVE_SCENARIOS = ("generation-speculative", "generation-plain")

# (column, header) of each scenario's table
LLM_COLUMNS = (("arm", "arm"), ("ttft_ms", "TTFT p50 (ms)"), ("tpot_ms", "TPOT p50 (ms)"),
               ("prompt_tokens_per_s", "prompt tokens/s"), ("output_tokens_per_s", "output tokens/s"),
               ("usd_per_1m_prompt_tokens", "$ / 1M input tokens"),
               ("usd_per_1m_prompt_tokens_prefix_cached", "$ / 1M input tokens, prefix cached"),
               ("usd_per_1m_output_tokens", "$ / 1M output tokens"), ("ppl_increase_pct", "perplexity change (%)"),
               ("ppl_increase_ci_pct", "perplexity change 95% CI (%)"),
               ("token_agreement_vs_fp32", "tokens equal to fp32's"), ("prompt_len", "prompt (tokens)"),
               ("output_len", "output (tokens)"), ("threads", "threads"), ("instance", "instance"),
               ("environment_id", "environment"), ("reason", "not run / note"))
LOAD_COLUMNS = (("variant", "variant"), ("serving_config", "config"), ("offered_rate_per_s", "offered (req/s)"),
                ("achieved_rate_per_s", "sent (req/s)"), ("throughput_per_s", "answered (req/s)"),
                ("latency_p50_ms", "p50 (ms)"), ("latency_p99_ms", "p99 (ms)"), ("slo_ms", "SLO (ms)"),
                ("slo_attainment", "within SLO"), ("meets_slo", "meets SLO"), ("n_measured", "requests"),
                ("errors", "errors"), ("timeouts", "timeouts"), ("valid", "valid (client kept up)"),
                ("environment_id", "environment"))
STREAM_COLUMNS = (("variant", "variant"), ("offered_rate_per_s", "offered (req/s)"),
                  ("ttft_p50_ms", "TTFT p50 (ms)"), ("ttft_p90_ms", "TTFT p90 (ms)"), ("ttft_p99_ms", "TTFT p99 (ms)"),
                  ("tpot_p50_ms", "TPOT p50 (ms)"), ("tpot_p90_ms", "TPOT p90 (ms)"), ("slo_ms", "TTFT SLO (ms)"),
                  ("meets_slo", "meets SLO"), ("n_measured", "requests"), ("errors", "errors"),
                  ("valid", "valid (client kept up)"), ("environment_id", "environment"))
SPECULATIVE_COLUMNS = (("variant", "arm"), ("drafter", "drafter"), ("gamma", "gamma"),
                       ("temperature", "temperature"), ("tokens_per_s", "decode tokens/s"),
                       ("speedup", "decode speedup (x)"), ("predicted_speedup", "predicted speedup (x)"),
                       ("e2e_speedup", "end-to-end speedup (x)"), ("alpha", "acceptance alpha"),
                       ("c", "draft cost c"), ("tokens_per_target_call", "tokens per target call"),
                       ("ttft_ms_p50", "TTFT p50 (ms)"), ("tpot_ms_p50", "TPOT p50 (ms)"),
                       ("identical", "output identical to the target's"), ("seq_len", "prompt (tokens)"),
                       ("new_tokens", "new tokens"), ("environment_id", "environment"))
SEARCH_COLUMNS = (("serving_config", "config"), ("stage", "stage"), ("goodput_per_s", "goodput (req/s)"),
                  ("knee_per_s", "knee (req/s)"), ("p99_at_goodput_ms", "p99 at goodput (ms)"),
                  ("usd_per_1k_requests_at_goodput", "$ / 1k requests at goodput"), ("slo_ms", "SLO (ms)"))


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(measurement rows, LLM-serving rows, load rows): the report draws each kind in its own section."""
    llm = llm_rows(rows)
    load = [r for r in rows if r.get("scenario") in LOAD_SCENARIOS]
    taken = {id(r) for r in llm + load + speculative_rows(rows)}
    return [r for r in rows if id(r) not in taken], llm, load


def speculative_rows(rows: list[dict]) -> list[dict]:
    """The speculative arms and, when there are any, the target-alone rows they are measured against."""
    if not any(r.get("scenario") == "generation-speculative" for r in rows):
        return []
    return [r for r in rows if r.get("scenario") in SPECULATIVE_SCENARIOS]


def cell(row: dict, key: str, lineage_text=None, absent: str = "-") -> str:
    """One table cell: numbers to 4 significant digits, a CI pair as "low – high", yes/no, ``absent`` for None."""
    if key == "lineage":
        return html.escape(lineage_text(row))
    if key == "quality_ci":
        low, high = row.get("quality_ci_low"), row.get("quality_ci_high")
        return f"{low:.4g} – {high:.4g}" if isinstance(low, float) and isinstance(high, float) else absent
    value = row.get(key)
    if value is None:
        return absent
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.4g} – {value[1]:.4g}"
    return html.escape(format_value(value))


def html_table(rows: list[dict], columns, lineage_text=None, always=(), absent: str = "-") -> str:
    """A table of ``rows`` with the ``(column, header)`` pairs some row has a value for (and those in ``always``);
    a None cell reads ``absent``."""
    shown = [(k, t) for k, t in columns if k in always or any(r.get(k) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(t)}</th>" for _k, t in shown)
    body = "".join("<tr>" + "".join(
        f"<td class='{'num' if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) else ''}'>"
        f"{cell(r, k, lineage_text, absent)}</td>" for k, _t in shown) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(fig) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%")


def llm_section(rows: list[dict]) -> list[str]:
    """TTFT vs TPOT, tokens/s by phase, $ per 1M input / output tokens and the perplexity change, one arm each."""
    if not rows:
        return []
    from workbench.ui.plots_llm import cost_figure, measured, ppl_figure, rate_figure, ttft_tpot_figure

    parts = ["<h2>LLM serving arms</h2>",
             "<p>One row per arm (notebook 07, <code>LlmPanel</code>): batch 1, one request after another; TTFT and "
             "TPOT are p50s over the prompts, token rates and costs per phase on the rows' instance (100% busy).</p>"]
    ok = measured(rows)
    if any(r.get("ttft_ms") is not None and r.get("tpot_ms") is not None for r in ok):
        parts += ["<h3>Time to first token vs time per output token</h3>", figure_html(ttft_tpot_figure(rows))]
    if any(r.get("prompt_tokens_per_s") is not None or r.get("output_tokens_per_s") is not None for r in ok):
        parts += ["<h3>Tokens per second</h3>", figure_html(rate_figure(rows))]
    if any(r.get("usd_per_1m_output_tokens") is not None or r.get("usd_per_1m_prompt_tokens") is not None
           for r in ok):
        parts += ["<h3>$ per 1M input / output tokens</h3>", figure_html(cost_figure(rows))]
    if any(r.get("ppl_increase_pct") is not None for r in ok):
        parts += ["<h3>Perplexity change vs fp32</h3>", figure_html(ppl_figure(rows))]
    return parts + [html_table(rows, LLM_COLUMNS, always=("arm",))]


def speculative_section(rows: list[dict]) -> list[str]:
    """Speedup vs gamma (measured and predicted) per temperature, accepted drafts per drafter, and the arms' table."""
    spec = speculative_rows([r for r in rows if not r.get("failed")])
    if not spec:
        return []
    from workbench.ui.plots_speculative import acceptance_figure, speedup_figure

    parts = ["<h2>Speculative decoding</h2>",
             "<p>Each arm against the target alone, measured side by side at batch 1 (notebook 06): decode speedup "
             "(prefill apart) next to the one the measured acceptance alpha and draft cost c predict.</p>"]
    drafted = [r for r in spec if r.get("scenario") == "generation-speculative"]
    for temperature in sorted({r.get("temperature", 0.0) for r in drafted}):
        parts += [f"<h3>Speedup vs gamma, temperature {temperature:g}</h3>",
                  figure_html(speedup_figure(drafted, temperature=temperature))]
    for temperature in sorted({r.get("temperature", 0.0) for r in drafted}):
        for drafter in dict.fromkeys(r["drafter"] for r in drafted if r.get("temperature", 0.0) == temperature):
            if any(r.get("accept_hist") for r in drafted if r["drafter"] == drafter):
                parts += [f"<h3>Accepted drafts per target call: {html.escape(drafter)}, temperature "
                          f"{temperature:g}</h3>", figure_html(acceptance_figure(drafted, drafter,
                                                                                 temperature=temperature))]
    return parts + [html_table(spec, SPECULATIVE_COLUMNS, always=("variant",))]


def load_section(rows: list[dict]) -> list[str]:
    """Latency vs offered load, the serving-config search and streaming-LM load, with their points tabulated.

    Takes every saved row: load points differ by offered rate and serving config, which the newest-row rule
    (``latest_rows``) does not tell apart; the figures keep the later row of a rate measured twice.
    """
    from workbench.ui.plots_load import curves, load_figure
    from workbench.ui.plots_load_stream import stream_load_figure, stream_rows

    parts = []
    streams = stream_rows(rows)
    if streams:
        parts += ["<h2>Streaming LM under load</h2>",
                  "<p>Open-loop Poisson streams against the causal-LM bundle on a real Triton server (loopback), "
                  "timed from the scheduled send. Top: time to first token, p50 to the highest tail percentile "
                  "each point has samples for (p99 needs 200, else p90), the TTFT SLO and the goodput; bottom: "
                  "time per output token. Failed streams are counted, not plotted.</p>",
                  figure_html(stream_load_figure(rows)),
                  html_table([r for pts in streams.values() for r in pts], STREAM_COLUMNS)]
    points = curves(rows)
    if points:
        parts += ["<h2>Latency under load</h2>",
                  "<p>Open-loop Poisson traffic against the bundle on a real Triton server (loopback); latency from "
                  "the scheduled send time. Band: p50 to p99 per served config; star: goodput (highest rate with "
                  "the required share of requests within the SLO); bars: time per request inside Triton, queued vs "
                  "computing. Errors and timeouts have no latency: they are counted (table), not plotted.</p>",
                  figure_html(load_figure(rows)), html_table([r for pts in points.values() for r in pts],
                                                             LOAD_COLUMNS)]
    search = [r for r in rows if r.get("scenario") == "load-search" and not r.get("failed")]
    if search:
        parts += ["<h3>Serving-config search</h3>", html_table(search, SEARCH_COLUMNS, always=("serving_config",))]
    return parts


def row_summary(row: dict) -> str:
    """One line naming a row by what its scenario varies (the environments' row lists)."""
    scenario = row.get("scenario") or "-"
    if row.get("scenario") in ("load", "load-stream"):
        where = f"{format_value(row.get('offered_rate_per_s'))} req/s offered"
        if row.get("serving_config"):
            where += f", config {row['serving_config']}"
    elif row.get("scenario") == "load-search":
        where = f"config {row.get('serving_config', '-')}"
    elif row in llm_rows([row]):
        where = (f"arm {row.get('arm', '-')}, prompt {format_value(row.get('prompt_len'))} + "
                 f"{format_value(row.get('output_len'))} output tokens")
    else:
        where = f"batch {format_value(row.get('batch_size'))} x {format_value(row.get('seq_len'))} tokens"
    return f"{scenario}, {where}"


__all__ = ["split_rows", "speculative_rows", "llm_section", "speculative_section", "load_section", "html_table", "cell",
           "row_summary", "LOAD_SCENARIOS", "SPECULATIVE_SCENARIOS"]
