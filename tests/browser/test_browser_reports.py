"""Real browser: the HTML report of each notebook study (the rows notebooks 07 and 08 write, tests/ui/studies), and of
a `workbench optimize` decision (tests/ui/fixtures), rendered by headless Debian chromium; every figure's axes are
checked as plotly.js laid them out: no axis runs far past its data, a log axis only where the data spans one, no
figure is empty.

These read static pages and check no timing, so `make test` runs them in its parallel pass, beside the unit tests
(tests/conftest.py's BESIDE_UNITS): in its serial pass they took ~50 s of CI on 2 cores.
"""
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


# Per figure: each y axis as laid out (type, range in axis units: log10 on log axes) and the extent of what is
# drawn on it (trace values with their error bars, shape lines), read from plotly.js's own full data and layout.
AXES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const axes = {};
  for (const [name, ax] of Object.entries(gd._fullLayout)) {
    if (!/^yaxis\\d*$/.test(name) || !ax.range) continue;
    const id = 'y' + name.slice(5);
    const values = [];
    for (const t of gd._fullData) {
      if ((t.yaxis || 'y') !== id || t.visible === false || !t.y) continue;
      const up = (t.error_y && t.error_y.visible && t.error_y.array) || [];
      const down = (t.error_y && t.error_y.visible && (t.error_y.arrayminus || t.error_y.array)) || [];
      Array.from(t.y).forEach((y, i) => { if (typeof y === 'number' && isFinite(y)) {
        values.push(y, y + (up[i] || 0), y - (down[i] || 0)); if (t.type === 'bar') values.push(0); } });
    }
    for (const s of gd._fullLayout.shapes || []) if (s.yref === id) values.push(s.y0, s.y1);
    axes[name] = {type: ax.type, range: ax.range.slice(), title: (ax.title && ax.title.text) || '', values};
  }
  return {title: (gd._fullLayout.title && gd._fullLayout.title.text) || '', axes};
})"""


def _check_axes(figure: dict) -> list[str]:
    """What is wrong with one figure's y axes (empty: nothing): an axis with nothing on it, an axis running past
    its data by more than plotly's padding, a log axis over data spanning less than x10, or a latency axis past a
    minute."""
    import math

    problems = []
    for name, ax in figure["axes"].items():
        where = f"{figure['title'][:60]!r} {name} ({ax['title']})"
        values = [v for v in ax["values"] if isinstance(v, (int, float))]
        if not values:
            problems.append(f"{where}: nothing drawn on it")
            continue
        low, high = min(values), max(values)
        if ax["type"] == "log":
            positive = [v for v in values if v > 0]
            low, high = min(positive), max(positive)
            top, bottom = 10 ** ax["range"][1], 10 ** ax["range"][0]
            if high / low < 10:
                problems.append(f"{where}: log axis over data spanning only x{high / low:.2g}")
        else:
            top, bottom = ax["range"][1], ax["range"][0]
        span = (high - low) or abs(high) or 1.0
        if top > high + 0.5 * span * (3 if ax["type"] == "log" else 1) or bottom < low - 0.5 * span:
            problems.append(f"{where}: axis {bottom:.4g}..{top:.4g} for data {low:.4g}..{high:.4g}")
        if "(ms)" in ax["title"] and top > 60_000:
            problems.append(f"{where}: a latency axis up to {top:.3g} ms")
        if not all(math.isfinite(x) for x in ax["range"]):
            problems.append(f"{where}: range {ax['range']}")
    return problems


def _faster_machine(rows: list[dict]) -> list[dict]:
    """Notebook 08's rows as a less loaded machine writes them: its SLO (ten batch-1 service times) is 35 ms, not
    463, and the highest rate's requests all timed out (no latency: counted in ``timeouts``)."""
    top = max(r.get("offered_rate_per_s") or 0 for r in rows)
    out = []
    for r in rows:
        r = {**r, "slo_ms": 35.0} if "slo_ms" in r else r
        if r.get("scenario") == "load" and r["offered_rate_per_s"] == top:
            r = {**r, "n_ok": 0, "timeouts": r["n_measured"], "latency_mean_ms": None,
                 **{k: None for k in r if k.startswith("latency_p") and k.endswith("_ms")}}
        out.append(r)
    return out


# (study, figures its report draws, rows rewritten first): the studies notebooks write (tests/ui/studies)
STUDY_FIGURES = [("quickstart", 3, None), ("02_quantisation", 2, None), ("batching", 1, None), ("serving", 3, None),
                 ("speculative", 3, None), ("llm-serving", 4, None), ("load_and_tail", 2, None),
                 ("load_and_tail", 2, _faster_machine)]


@pytest.mark.parametrize("study, figures, rewrite", STUDY_FIGURES)
def test_notebook_study_reports_draw_every_figure_on_sane_axes(chromium, tmp_path, shots, study, figures, rewrite):
    import json

    from workbench.ui.report import build_report

    studies = REPO / "tests" / "ui" / "studies"
    folder = tmp_path / study
    folder.mkdir()
    rows = [json.loads(line) for line in (studies / f"{study}.jsonl").read_text().splitlines() if line.strip()]
    rows = rewrite(rows) if rewrite else rows
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(studies / f"{study}.environments.json", folder / "environments.json")
    drawn = _render(chromium, build_report(folder), figures,
                    shots / f"report-{study}{'-rewritten' if rewrite else ''}.png")
    assert len(drawn) == figures, [f["title"] for f in drawn]
    assert [p for f in drawn for p in _check_axes(f)] == []


def _render(chromium, page_path: Path, figures: int, shot: Path, script: str = AXES):
    """Open a report in a page of the module's chromium, wait for ``figures`` plots, return ``script``'s reading."""
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(page_path.as_uri())
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}",
                               timeout=60_000)
        drawn = page.evaluate(script)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert not errors, errors
    return drawn


# The x axis of each figure as laid out, with the trace x values and the x of shapes drawn on it (the SLO line).
X_AXES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  title: (gd._fullLayout.title && gd._fullLayout.title.text) || '',
  range: gd._fullLayout.xaxis.range.slice(), axis: (gd._fullLayout.xaxis.title || {}).text || '',
  values: gd._fullData.flatMap(t => Array.from(t.x || []).filter(x => typeof x === 'number')),
  shapes: (gd._fullLayout.shapes || []).filter(s => s.xref === 'x').map(s => s.x0)}))"""


# (decision fixture, the notebook study whose rows sit beside it or None, figures the report draws)
DECISION_REPORTS = [("decision.json", "quickstart", 4), ("decision_lm.json", None, 1)]


@pytest.mark.parametrize("fixture, rows_of, figures", DECISION_REPORTS)
def test_decision_report_draws_the_pareto_front_on_sane_axes(chromium, tmp_path, shots, fixture, rows_of, figures):
    """workbench optimize's decision section (tests/ui/fixtures) above a study's rows: every y axis as the notebook
    reports', and the Pareto front's x axis spans its points and the SLO line without running far past them."""
    import json

    from workbench.ui.report import build_report

    folder = tmp_path / "opt"
    folder.mkdir()
    shutil.copy(REPO / "tests" / "ui" / "fixtures" / fixture, folder / "decision.json")
    if rows_of:
        studies = REPO / "tests" / "ui" / "studies"
        shutil.copy(studies / f"{rows_of}.jsonl", folder / "results.jsonl")
        shutil.copy(studies / f"{rows_of}.environments.json", folder / "environments.json")
    drawn, x_axes = _render(chromium, build_report(folder), figures, shots / f"report-decision-{Path(fixture).stem}.png",
                            f"() => [({AXES})(), ({X_AXES})()]")
    assert len(drawn) == figures, [f["title"] for f in drawn]
    assert [p for f in drawn for p in _check_axes(f)] == []
    front = x_axes[0]                                   # the decision is drawn first
    slo = json.loads((folder / "decision.json").read_text())["slo"]["ms"]
    assert front["title"].startswith("Pareto front") and front["axis"].endswith("(ms)")
    assert front["shapes"] == [slo]
    low, high = front["range"]
    data = front["values"] + [slo]
    assert 0 <= low <= min(data) and max(data) <= high <= max(data) * 1.25, (front["range"], data)
