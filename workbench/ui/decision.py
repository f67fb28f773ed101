"""The decision section of the HTML report: what `workbench optimize` picked, why, and what the others lost on.

Reads ``artifacts/<study>/decision.json`` (written by ``workbench.optimize``) and draws, in order: a banner when
the run is incomplete (with the command that resumes it), the pick with its confirmed figures, lineage and load
check, $ per 1M requests or output tokens at the SLO on each instance, the Pareto front, one line per arm that
did not win saying why, build vs buy at the traffic given, and what the budget left out. A figure the run did
not measure is null in the file and "—" here, never 0.

Example:
    >>> decision = load_decision("artifacts/opt-demo/decision.json")          # doctest: +SKIP
    >>> html = "\\n".join(decision_section(decision))
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from workbench.ui.report_sections import figure_html, html_table
from workbench.util.numbers import format_value

DECISION_FILE = "decision.json"
SCHEMA = 1
ABSENT = "—"
OUTCOMES = ("picked", "lost", "failed", "skipped", "not-applicable")

# the columns of optimize's own rows (scenario "optimize-*"); a table shows those some row has a value for
SEARCH_COLUMNS = (("scenario", "scenario"), ("stage", "stage"), ("arm", "arm"), ("batch_size", "batch"),
                  ("status", "status"), ("p50_ms", "p50 (ms)"), ("p90_ms", "p90 (ms)"),
                  ("latency_p50_ms", "p50 (ms)"), ("latency_p90_ms", "p90 (ms)"), ("latency_p99_ms", "p99 (ms)"),
                  ("throughput_per_s", "throughput (items/s)"), ("speedup", "speed-up (x)"),
                  ("drop_pts", "quality drop"), ("drop_ci_pts", "drop 95% CI"),
                  ("usd_per_1m_requests", "$ / 1M requests"), ("usd_per_1m_output_tokens", "$ / 1M output tokens"),
                  ("reason", "reason"), ("environment_id", "environment"))
BUY_COLUMNS = (("instance", "instance"), ("api", "hosted API"), ("usd_per_1m_self", "self-hosted $ / 1M"),
               ("usd_per_1m_api", "API $ / 1M"), ("break_even_per_day", "break-even (per day)"),
               ("traffic_per_day", "your traffic (per day)"), ("verdict", "verdict at your traffic"))


def load_decision(path: str | Path) -> dict:
    """Read and check a decision.json; a malformed one raises ValueError naming the file and the problem."""
    path = Path(path)
    fix = f"rerun the same `workbench optimize` command to rewrite it, or move {path.name} away to report the rows alone"
    try:
        decision = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): {fix}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): {fix}") from None
    problems = decision_problems(decision)
    if problems:
        raise ValueError(f"{path} is not a decision this report can read: {'; '.join(problems[:4])}: {fix}")
    return decision


def decision_problems(decision) -> list[str]:
    """What breaks the agreed schema (empty: nothing), checked before anything is drawn."""
    if not isinstance(decision, dict):
        return [f"the top level is a {type(decision).__name__}, not an object"]
    if decision.get("schema") != SCHEMA:
        return [f"schema is {decision.get('schema')!r}; this workbench reads schema {SCHEMA}"]
    problems = []
    slo = decision.get("slo")
    if not isinstance(slo, dict) or not _number(slo.get("ms")) or not isinstance(slo.get("percentile"), str):
        problems.append('"slo" must be {"ms": number, "percentile": "p99"}')
    if not isinstance(decision.get("complete"), bool):
        problems.append('"complete" must be true or false')
    for key in ("max_drop", "budget_s", "elapsed_s"):
        if decision.get(key) is not None and not _number(decision[key]):
            problems.append(f'"{key}" must be a number or null, not {decision[key]!r}')
    for key in ("arms", "pareto", "build_vs_buy"):
        value = decision.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            problems.append(f'"{key}" must be a list of objects')
    for i, arm in enumerate(a for a in decision.get("arms") or [] if isinstance(a, dict)):
        if not isinstance(arm.get("arm"), str) or arm.get("outcome") not in OUTCOMES:
            problems.append(f'arms[{i}] needs "arm" and an "outcome" of {", ".join(OUTCOMES)}')
    for i, point in enumerate(p for p in decision.get("pareto") or [] if isinstance(p, dict)):
        for key in ("tail_ms", "quality_drop"):
            if point.get(key) is not None and not _number(point[key]):
                problems.append(f'pareto[{i}].{key} must be a number or null, not {point[key]!r}')
    pick = decision.get("pick")
    if pick is not None and (not isinstance(pick, dict) or not isinstance(pick.get("arm"), str)):
        problems.append('"pick" must be null or an object naming its "arm"')
    if not isinstance(decision.get("skipped_for_budget", []), list):
        problems.append('"skipped_for_budget" must be a list of lines')
    return problems


def decision_section(decision: dict, source: str | Path | None = None) -> list[str]:
    """The report's decision section as HTML parts (drawn first, above the measured rows)."""
    from workbench.ui.plots_decision import pareto_decision_figure

    unit = decision.get("cost_unit") or "USD per 1M requests"
    slo = decision["slo"]
    parts = ["<h2>Decision</h2>"]
    if not decision["complete"]:
        resume = decision.get("resume")
        parts.append("<p class='banner'><b>Incomplete run</b>: the figures below are the search as it stood after "
                     f"{_v(decision.get('elapsed_s'), 's')} of a {_v(decision.get('budget_s'), 's')} budget. "
                     + (f"Resume with <code>{html.escape(resume)}</code> (rows already measured are kept)."
                        if resume else "No resume command was recorded.") + "</p>")
    parts.append(f"<p>{_setting(decision, source)}</p>")
    parts += _pick(decision.get("pick"), slo, unit)
    if decision.get("pareto"):
        parts += ["<h3>Pareto front</h3>",
                  f"<p>Each point is one arm at one batch size: its {html.escape(slo['percentile'])} latency in the "
                  f"batching sweep and its quality drop; hover for {html.escape(unit)}. Points left of the SLO line "
                  "and below the max-drop line meet both limits.</p>",
                  figure_html(pareto_decision_figure(decision)),
                  html_table([_flat(p) for p in decision["pareto"]],
                             [("arm", "arm"), ("batch_size", "batch"), ("tail_ms", f"{slo['percentile']} (ms)"),
                              ("quality_drop", _drop_head(decision))] + _cost_columns(decision["pareto"], unit),
                             always=("arm", "tail_ms", "quality_drop"), absent=ABSENT)]
    parts += _arms(decision.get("arms") or [], unit, _drop_head(decision))
    parts += _build_vs_buy(decision.get("build_vs_buy") or [], unit)
    skipped = decision.get("skipped_for_budget") or []
    if skipped:
        parts += ["<h3>Skipped for lack of budget</h3><ul>"] + [f"<li>{html.escape(str(s))}</li>" for s in skipped] \
            + ["</ul>"]
    return parts


def search_rows_section(rows: list[dict]) -> list[str]:
    """Every row the search saved, as measured (a resumed run's rows were measured once, by the earlier run)."""
    if not rows:
        return []
    stages = ", ".join(f"{n} {s}" for s, n in _count(r.get("stage") or r.get("scenario") for r in rows).items())
    return ["<h2>Rows of the search</h2>", f"<p>{len(rows)} rows saved by <code>workbench optimize</code> "
            f"({html.escape(stages)}).</p>", html_table(rows, SEARCH_COLUMNS, always=("arm",), absent=ABSENT)]


def _count(values) -> dict:
    counts: dict = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def _setting(decision: dict, source) -> str:
    slo = decision["slo"]
    where = f" From <code>{html.escape(str(source))}</code>." if source else ""
    return (f"Task {html.escape(str(decision.get('task', ABSENT)))}, model {html.escape(str(decision.get('model', ABSENT)))}"
            f" on {html.escape(str(decision.get('device', ABSENT)))} ({html.escape(str(decision.get('cpu') or ABSENT))}). "
            f"SLO: {html.escape(slo['percentile'])} ≤ {format_value(slo['ms'])} ms; max quality drop "
            f"{_v(decision.get('max_drop'))}; {_v(decision.get('elapsed_s'), 's')} spent of a "
            f"{_v(decision.get('budget_s'), 's')} budget.{where}")


def _pick(pick: dict | None, slo: dict, unit: str) -> list[str]:
    if not pick:
        return ["<p class='fail'>No pick: no arm met the SLO within the quality limit (see why each lost below).</p>"]
    quality = pick.get("quality") or {}
    ci = quality.get("ci")
    load = pick.get("load_check")
    rate = "output tokens/s" if "token" in unit else "requests/s"   # what the cost is per
    lines = [("arm", f"<b>{html.escape(pick['arm'])}</b> at batch {_v(pick.get('batch_size'))}"),
             ("lineage", html.escape(" → ".join(str(s) for s in pick.get("lineage") or [])) or ABSENT),
             ("confirmed speed-up", f"{_v(pick.get('confirmed_speedup'), 'x')} in a fresh run vs the baseline "
                                    f"(selection run: {_v(pick.get('selection_speedup'), 'x')})"),
             (f"{slo['percentile']} at the SLO point", f"{_v(pick.get('tail_ms'), 'ms')} (SLO {format_value(slo['ms'])}"
                                                       f" ms), throughput {_v(pick.get('throughput_per_s'), rate)}"),
             (f"quality ({html.escape(str(quality.get('split') or ABSENT))} split)",
              f"{html.escape(str(quality.get('metric') or 'quality'))} {_v(quality.get('value'))}, drop "
              f"{_v(quality.get('drop'))} (95% CI {_pair(ci)})"),
             (unit, _costs(pick.get("usd_per_1m"))),
             ("bundle", f"<code>{html.escape(pick['bundle'])}</code>" if pick.get("bundle") else ABSENT),
             ("load check", _load(load, slo) if load else f"{ABSENT} (not run)")]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in lines)
    return [f"<h3>Pick: {html.escape(pick['arm'])}, batch {_v(pick.get('batch_size'))}</h3>", f"<table>{rows}</table>"]


def _load(load: dict, slo: dict) -> str:
    met = load.get("slo_met")
    verdict = ABSENT if met is None else ("SLO met" if met else "<span class='fail'>SLO missed</span>")
    if met is None and load.get("outcome"):            # e.g. client-limited: the load client could not keep up
        verdict += f" ({html.escape(str(load['outcome']))})"
    latency = f" {html.escape(load['latency'])}" if load.get("latency") else ""   # an LM's: ITL per output token
    return (f"open loop at {_v(load.get('rate_per_s'), 'req/s')}: {slo['percentile']}{latency} "
            f"{_v(load.get('tail_ms'), 'ms')}, {verdict}, {_v(load.get('errors'))} errors")


def _arms(arms: list[dict], unit: str, drop_head: str) -> list[str]:
    """One line per arm that did not win, with its reason; then every arm's figures in one table."""
    if not arms:
        return []
    others = [a for a in arms if a.get("outcome") != "picked"]
    lines = [f"<li><b>{html.escape(a['arm'])}</b> ({html.escape(a['outcome'])} at {html.escape(str(a.get('stage') or ABSENT))}"
             f"): {html.escape(str(a.get('why') or 'no reason recorded'))}</li>" for a in others]
    columns = [("arm", "arm"), ("outcome", "outcome"), ("stage", "stage"), ("speedup", "speed-up (x)"),
               ("drop", drop_head), ("drop_ci", "drop 95% CI")] + _cost_columns(arms, unit) + [("why", "why")]
    return (["<h3>Why the others lost</h3>", "<ul>"] + (lines or ["<li>no other candidate</li>"]) + ["</ul>",
            html_table([_flat(a) for a in arms], columns, always=[k for k, _t in columns], absent=ABSENT)])


def _build_vs_buy(rows: list[dict], unit: str) -> list[str]:
    if not rows:
        return []
    return ["<h3>Build vs buy</h3>",
            f"<p>Self-hosting the pick on an instance (busy all day) against each hosted API's price, in {html.escape(unit)}"
            ": below the break-even traffic the API is cheaper, above it the instance is. Without a traffic figure "
            "there is no verdict.</p>",
            html_table([_per_day(r) for r in rows], BUY_COLUMNS, always=[k for k, _t in BUY_COLUMNS], absent=ABSENT)]


def _per_day(row: dict) -> dict:
    """Traffic figures as whole requests per day with thousands separators (12,000, not 1.2e+04)."""
    return {**row, **{k: f"{row[k]:,.0f}" for k in ("break_even_per_day", "traffic_per_day")
                      if _number(row.get(k))}}


def _drop_head(decision: dict) -> str:
    """The drop's unit as ``arms.rows`` measures it: accuracy points, else the metric's own unit."""
    metric = ((decision.get("pick") or {}).get("quality") or {}).get("metric")
    return "quality drop (accuracy pts)" if metric in (None, "accuracy") else f"{metric} change"


def _cost_columns(entries: list[dict], unit: str) -> list[tuple[str, str]]:
    instances = dict.fromkeys(k for e in entries for k in (e.get("usd_per_1m") or {}))
    short = unit.replace("USD per", "$ /")
    return [(f"usd:{i}", f"{short}, {i}") for i in instances]


def _flat(entry: dict) -> dict:
    """An entry with its per-instance costs as ``usd:<instance>`` columns, for html_table."""
    return {**entry, **{f"usd:{k}": v for k, v in (entry.get("usd_per_1m") or {}).items()}}


def _costs(costs: dict | None) -> str:
    if not costs:
        return ABSENT
    return ", ".join(f"{html.escape(k)}: {'$' + format_value(v, 4) if v is not None else ABSENT}"
                     for k, v in costs.items())


def _v(value, unit: str = "") -> str:
    if value is None:
        return ABSENT
    return html.escape(format_value(value) + (f" {unit}" if unit and unit != "x" else unit))


def _pair(pair) -> str:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2 or None in pair:
        return ABSENT
    return f"[{format_value(pair[0], 3)}, {format_value(pair[1], 3)}]"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["load_decision", "decision_problems", "decision_section", "search_rows_section", "DECISION_FILE"]
