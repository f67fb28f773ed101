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
from workbench.ui.report_sections import (figure_html, html_table, llm_section, load_section, row_summary,
                                         speculative_section, split_rows)
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
h2{border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{background:#fff4e5;border:1px solid #e0a040;padding:8px 12px}"""


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

    from workbench.ui.decision import DECISION_FILE, decision_section, load_decision, search_rows_section

    path = study_path(study)
    decision_path = path.parent / DECISION_FILE
    decision = load_decision(decision_path) if decision_path.exists() else None   # malformed: names file and problem
    table = ResultsTable.load(path) if decision is None or path.exists() else ResultsTable(path, [])
    if not table.rows and decision is None:
        raise ValueError(f"{path} has no rows: measure something into the study first")
    environments = load_environments(path.parent)
    search = [r for r in table.rows if str(r.get("scenario", "")).startswith("optimize-")]   # optimize's own rows
    search_ids = {id(r) for r in search}
    load = split_rows([r for r in table.rows if id(r) not in search_ids])[2]   # every load row: rate and config
    load_ids = {id(r) for r in load} | search_ids
    others = [r for r in table.rows if id(r) not in load_ids]
    rows = latest_rows(others)                # a point measured again: its newest row
    good = [r for r in rows if not r.get("failed")]
    measured, llm, _ = split_rows(good)       # each scenario drawn and tabulated with its own columns
    parts = [f"<h1>Workbench report: {html.escape(path.parent.name)}</h1>"]
    if decision is not None:                  # the answer first, the measurements it rests on below
        parts += decision_section(decision, decision_path)
    parts.append(_provenance(path, table.rows, len(others) - len(rows), environments))
    sections = llm_section(llm) + speculative_section(good) + load_section(load) + search_rows_section(search)
    if measured or not (sections or decision):
        parts += _measured_section(measured, lineage_text)
    parts += sections
    failed = [r for r in rows if r.get("failed")]
    if failed:
        parts += ["<h2>Failed variants</h2><ul>"] + [
            f"<li class='fail'>{html.escape(str(r.get('variant')))} ({html.escape(str(r.get('device', '')))}): "
            f"{html.escape(str(r.get('error', '')))}</li>" for r in failed] + ["</ul>"]
    parts += ["<h2>Environments</h2>", _environments(environments, rows + load)]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench report {html.escape(path.parent.name)}"
            f"</title><style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")
    return write_file_atomic(Path(out) if out else path.parent / "report.html", page)


def _measured_section(rows: list[dict], lineage_text) -> list[str]:
    """Figures, Pareto front and table of the measurement rows (latency, batching, generation: not load or LLM arms)."""
    from workbench.ui.plots import figures_for

    figures = figures_for(rows)
    parts = ["<h2>Figures</h2>"] + [f"<h3>{html.escape(title)}</h3>" + figure_html(fig) for title, fig in figures]
    if not figures:
        parts.append("<p>No figure: the rows have no quality and latency to plot.</p>")
    front = pareto_front(rows)
    metric = metric_name(rows) or "quality"
    return parts + [f"<h2>Pareto front ({html.escape(metric)} vs p50 latency)</h2>",
                    "<p>Rows are compared only with rows of the same "
                    + ", ".join(c.replace("_", " ") for c in PARETO_GROUP) + ": each group has its own front.</p>",
                    _rows_table(front, lineage_text) if front else "<p>No row has both quality and latency.</p>",
                    "<h2>All rows</h2>", _rows_table(rows, lineage_text)]


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


def _rows_table(rows: list[dict], lineage_text) -> str:
    heads = _headers(rows)
    shown = [k for k, _t in PARETO_COLUMNS if k in ("lineage", "quality_ci") or any(r.get(k) is not None for r in rows)]
    if metric_name(rows) and "metric" in shown:          # one metric: it heads the quality column instead
        shown.remove("metric")
    if "usd_per_1m_requests" in shown and "usd_per_1k_requests" in shown:   # the same cost, read without micro-$
        shown.remove("usd_per_1k_requests")
    return html_table(rows, [(k, heads[k]) for k in shown], lineage_text, always=shown)


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
    items = "".join(f"<li>{html.escape(str(r.get('variant')))}"
                    + (f" [{html.escape(str(r['variant_id']))}]" if r.get("variant_id") else "") + ", "
                    f"{html.escape(row_summary(r))}, {html.escape(str(r.get('measured_at', '')))}"
                    f"{' (failed)' if r.get('failed') else ''}</li>" for r in rows)
    return f"<details open><summary>rows measured here</summary><ul>{items}</ul></details>"


__all__ = ["build_report", "study_path"]
