"""One self-contained HTML report of a saved study: every figure, the Pareto table, failures and the environments.

plotly.js is embedded once, so the file opens offline and can be mailed as it is. Every number comes from the
saved ``results.jsonl`` (the report says which file and when it was measured); nothing is recomputed or assumed.
Each row names the environment (machine + software) it was measured in, and the report lists every environment of
the study with the rows that came from it. A point measured again shows its newest row; the report says how many
older ones it left out.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from workbench.results import (PARETO_GROUP, ResultsTable, latest_rows, load_environments, metric_name,
                               pareto_front)
from workbench.util.files import write_file_atomic

# (column, header); "quality" is headed by the rows' metric (accuracy, perplexity, ...), see _headers.
PARETO_COLUMNS = (("variant", "variant"), ("lineage", "lineage"), ("device", "device"), ("precision", "precision"),
                  ("batch_size", "batch"), ("seq_len", "seq len (tokens)"), ("metric", "metric"),
                  ("quality", "quality"),
                  ("quality_ci", "95% CI"), ("latency_p50_ms", "p50 (ms)"), ("latency_p90_ms", "p90 (ms)"),
                  ("latency_p99_ms", "p99 (ms)"), ("throughput_per_s", "throughput (items/s)"),
                  ("size_mb", "size (MB)"), ("usd_per_1m_requests", "$ / 1M requests"),
                  ("usd_per_1k_requests", "$ / 1k requests"), ("usd_per_1m_tokens", "$ / 1M tokens"),
                  ("environment_id", "environment"))

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}.fail{color:#b00}
h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def study_path(study: str | Path) -> Path:
    """``results.jsonl`` of a study name (under artifacts/) or of a given folder/file."""
    path = Path(study)
    if path.suffix == ".jsonl" or path.is_dir():
        return path / "results.jsonl" if path.is_dir() else path
    from workbench.util.files import artifacts_root

    return artifacts_root() / str(study) / "results.jsonl"


def build_report(study: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for a saved study and return its path.

    Args:
        study: a study name (``artifacts/<study>/``), a study folder or a ``results.jsonl`` file.
        out: destination file (default: ``report.html`` beside the results). Written atomically.

    Example:
        >>> build_report("quickstart")            # -> artifacts/quickstart/report.html   # doctest: +SKIP
    """
    from plotly.offline import get_plotlyjs

    from workbench.ui.lineage import lineage_text
    from workbench.ui.plots import figures_for

    path = study_path(study)
    table = ResultsTable.load(path)
    if not table.rows:
        raise ValueError(f"{path} has no rows: measure something into the study first")
    environments = load_environments(path.parent)
    rows = latest_rows(table.rows)            # a point measured again: its newest row
    good = [r for r in rows if not r.get("failed")]
    figures = figures_for(good)
    parts = [f"<h1>Workbench report: {html.escape(path.parent.name)}</h1>",
             _provenance(path, table.rows, len(table.rows) - len(rows), environments), "<h2>Figures</h2>"]
    parts += [f"<h3>{html.escape(title)}</h3>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                                              default_width="100%") for title, fig in figures]
    if not figures:
        parts.append("<p>No figure: the rows have no quality and latency to plot.</p>")
    parts += _load_section(table.rows)
    front = pareto_front(good)
    metric = metric_name(good) or "quality"
    parts += [f"<h2>Pareto front ({html.escape(metric)} vs p50 latency)</h2>",
              "<p>Rows are compared only with rows of the same " + ", ".join(c.replace("_", " ") for c in PARETO_GROUP)
              + ": each group has its own front.</p>",
              _rows_table(front, lineage_text) if front else "<p>No row has both quality and latency.</p>",
              "<h2>All rows</h2>", _rows_table(good, lineage_text)]
    failed = [r for r in rows if r.get("failed")]
    if failed:
        parts += ["<h2>Failed variants</h2><ul>"] + [
            f"<li class='fail'>{html.escape(str(r.get('variant')))} ({html.escape(str(r.get('device', '')))}): "
            f"{html.escape(str(r.get('error', '')))}</li>" for r in failed] + ["</ul>"]
    parts += ["<h2>Environments</h2>", _environments(environments, rows)]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report {html.escape(path.parent.name)}"
            f"</title><style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")
    return write_file_atomic(Path(out) if out else path.parent / "report.html", page)


def _load_section(rows: list[dict]) -> list[str]:
    """Latency vs offered load and the serving-config search, and streaming-LM load, when the study has such rows.

    Reads every saved row: load points differ by offered rate and serving config, which the newest-row rule
    (``latest_rows``) does not tell apart.
    """
    from workbench.ui.plots_load import curves, load_figure
    from workbench.ui.plots_load_stream import stream_load_figure, stream_rows

    def figure(title: str, blurb: str, fig) -> list[str]:
        return [f"<h2>{title}</h2>", f"<p>{blurb}</p>",
                fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%")]

    parts = []
    if stream_rows(rows):
        parts += figure("Streaming LM under load",
                        "Open-loop Poisson streams against the causal-LM bundle on a real Triton server (loopback), "
                        "timed from the scheduled send. Top: time to first token, p50 to the highest tail percentile "
                        "each point has samples for (p99 needs 200, else p90), the TTFT SLO and the goodput; bottom: "
                        "time per output token.", stream_load_figure(rows))
    if not curves(rows):
        return parts
    parts += figure("Latency under load",
                    "Open-loop Poisson traffic against the bundle on a real Triton server (loopback); latency from "
                    "the scheduled send time. Band: p50 to p99 per served config; star: goodput (highest rate with "
                    "the required share of requests within the SLO); bars: time per request inside Triton, queued vs "
                    "computing.", load_figure(rows))
    search = [r for r in rows if r.get("scenario") == "load-search"]
    if search:
        cols = (("serving_config", "config"), ("stage", "stage"), ("goodput_per_s", "goodput (req/s)"),
                ("knee_per_s", "knee (req/s)"), ("p99_at_goodput_ms", "p99 at goodput (ms)"),
                ("usd_per_1k_requests_at_goodput", "$ / 1k requests at goodput"), ("slo_ms", "SLO (ms)"))
        head = "".join(f"<th>{html.escape(t)}</th>" for _k, t in cols)
        body = "".join("<tr>" + "".join(f"<td>{_cell(r, k, None)}</td>" for k, _t in cols) + "</tr>" for r in search)
        parts += ["<h3>Serving-config search</h3>", f"<table><tr>{head}</tr>{body}</table>"]
    return parts


def _provenance(path: Path, rows: list[dict], superseded: int, environments: dict) -> str:
    times = sorted(r["measured_at"] for r in rows if r.get("measured_at"))
    when = f"measured {times[0]} to {times[-1]}" if times else "measurement times not recorded"
    again = (f" {superseded} older measurement{'s' if superseded != 1 else ''} of points measured again "
             "(same variant, shape, threads and environment) are left out: the newest row of each point is shown."
             if superseded else "")
    return (f"<p>From <code>{html.escape(str(path))}</code>: {len(rows)} rows, {when}, in {len(environments)} "
            f"environment{'s' if len(environments) != 1 else ''}.{again} Figures and tables show the saved "
            "measurements as they are; each row's timings hold for the environment it names (see Environments).</p>")


def _headers(rows: list[dict]) -> dict[str, str]:
    """Column headers: the quality columns named by the rows' metric; the metric column only when rows mix them."""
    metric = metric_name(rows)
    heads = dict(PARETO_COLUMNS)
    if metric:
        heads.update(quality=metric, quality_ci=f"{metric} 95% CI")
    return heads


def _cell(row: dict, key: str, lineage_text) -> str:
    if key == "lineage":
        return html.escape(lineage_text(row))
    if key == "quality_ci":
        low, high = row.get("quality_ci_low"), row.get("quality_ci_high")
        return f"{low:.4g} – {high:.4g}" if isinstance(low, float) and isinstance(high, float) else "-"
    value = row.get(key)
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else html.escape(str(value))


def _rows_table(rows: list[dict], lineage_text) -> str:
    heads = _headers(rows)
    shown = [k for k, _t in PARETO_COLUMNS if k in ("lineage", "quality_ci") or any(r.get(k) is not None for r in rows)]
    if metric_name(rows) and "metric" in shown:          # one metric: it heads the quality column instead
        shown.remove("metric")
    if "usd_per_1m_requests" in shown and "usd_per_1k_requests" in shown:   # the same cost, read without micro-$
        shown.remove("usd_per_1k_requests")
    columns = [(k, heads[k]) for k in shown]
    head = "".join(f"<th>{html.escape(t)}</th>" for _k, t in columns)
    body = "".join("<tr>" + "".join(f"<td class='{'num' if isinstance(r.get(k), (int, float)) else ''}'>"
                                    f"{_cell(r, k, lineage_text)}</td>" for k, _t in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _environments(environments: dict[str, dict], rows: list[dict]) -> str:
    """Each environment's fingerprint and the rows measured in it; rows that name none are listed apart."""
    parts = []
    for env_id, env in environments.items():
        own = [r for r in rows if r.get("environment_id") == env_id]
        title = f"Environment <code>{html.escape(env_id)}</code>: {len(own)} row{'s' if len(own) != 1 else ''}"
        if env.get("legacy_file"):
            title += (f" (from the study's old <code>{html.escape(env['legacy_file'])}</code>, written by its last "
                      "run: which rows it covers was not recorded)")
        parts += [f"<h3 id='env-{html.escape(env_id)}'>{title}</h3>", _fingerprint(env), _row_list(own)]
    unnamed = [r for r in rows if not r.get("environment_id")]
    if unnamed:
        parts += [f"<h3>No environment recorded: {len(unnamed)} row{'s' if len(unnamed) != 1 else ''}</h3>",
                  "<p>Measured before rows named their environment: their timings cannot be tied to a machine.</p>",
                  _row_list(unnamed)]
    unknown = sorted({r["environment_id"] for r in rows if r.get("environment_id")} - set(environments))
    if unknown:
        parts.append("<p class='fail'>Rows name environment(s) " + ", ".join(html.escape(u) for u in unknown)
                     + " that environments.json does not describe.</p>")
    if not parts:
        return "<p>No environments.json beside the results: timings cannot be tied to a machine.</p>"
    return "\n".join(parts)


def _fingerprint(env: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if isinstance(v, (dict, list)) else str(v))}"
                   "</td></tr>" for k, v in env.items() if k not in ("environment_id", "legacy_file"))
    return f"<table>{rows}</table>"


def _row_list(rows: list[dict]) -> str:
    if not rows:
        return "<p>No rows.</p>"
    items = "".join(f"<li>{html.escape(str(r.get('variant')))} [{html.escape(str(r.get('variant_id', '')))}], "
                    f"{html.escape(str(r.get('scenario') or '-'))}, batch {html.escape(str(r.get('batch_size', '-')))}"
                    f" x {html.escape(str(r.get('seq_len', '-')))} tokens, {html.escape(str(r.get('measured_at', '')))}"
                    f"{' (failed)' if r.get('failed') else ''}</li>" for r in rows)
    return f"<details open><summary>rows measured here</summary><ul>{items}</ul></details>"


__all__ = ["build_report", "study_path"]
