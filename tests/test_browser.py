"""Real browser: JupyterLab (loopback, token) + headless Debian chromium driven by playwright.

Opens the quickstart, runs all cells, presses Run in the panel, waits until the live plotly chart shows more
points, and saves a screenshot under the test's artifacts dir. The server is stopped whatever happens.

Renders the HTML report of each notebook study (the rows notebooks 07 and 08 write, tests/ui/studies), and of a
`workbench optimize` decision (tests/ui/fixtures), and checks every figure's axes as plotly.js laid them out: no axis
runs far past its data, a log axis only where the data spans one, no figure is empty.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.util.net import free_port, http_ok, wait_until_ready  # the same helpers the Triton and vLLM servers use

# serial: the quickstart's Find the best works within a time budget, and JupyterLab + chromium + a kernel are three
# more processes on 2 cores
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration, pytest.mark.serial]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"]
POINTS = ".js-plotly-plot .scatterlayer .trace .points path"


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian chromium is not installed (.ci/run installs it: apt-get install -y chromium)"
        if os.environ.get("WORKBENCH_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a free loopback port with a token, serving a copy of the quickstart; stopped afterwards."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "01_quickstart.ipynb", root)
    port, token = free_port(), os.urandom(16).hex()
    env = {**os.environ, "WORKBENCH_SMALL": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if os.geteuid() == 0 else []),   # CI containers run as root
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until_ready("JupyterLab", http_ok(f"http://127.0.0.1:{port}/api/status?token={token}"), process=proc,
                         timeout_s=90, interval_s=0.5,
                         log_tail=lambda: "\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}/lab/tree/01_quickstart.ipynb?token={token}"
    finally:
        _stop(proc)
        log.close()


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)   # its own session: the kernels go too
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# Every code cell has an execution count and the kernel is idle again (read from JupyterLab's own model).
CELLS_DONE = """() => { const nb = window.jupyterapp.shell.currentWidget;
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' &&
         nb.content.widgets.every(c => c.model.type !== 'code' || c.model.executionCount !== null); }"""
CELL_ERRORS = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === 'code')
  .flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue))"""


def _wait(predicate, timeout: float, what: str, page) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(1000)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def chromium():
    """One headless chromium for the module's tests (each opens its own page): launching it took ~3 s per test."""
    from playwright.sync_api import sync_playwright

    path = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _shots() -> Path:
    shots = Path(os.environ["WORKBENCH_ARTIFACTS"]) / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_quickstart_in_real_browser(chromium, lab, tmp_path):
    shots = _shots()
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(lab, timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel",
                               timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        news = page.locator(".jp-toast-button", has_text="No")   # "get Jupyter news?" toast over the page
        if news.count():
            news.first.click()
        # Run-all stops at a failing cell, leaving later cells unexecuted: stop waiting on the first error too.
        _wait(lambda: page.evaluate(CELLS_DONE) or page.evaluate(CELL_ERRORS), 600, "all cells to run", page)
        assert page.evaluate(CELL_ERRORS) == [], "a notebook cell raised in the browser"
        page.wait_for_selector(POINTS, timeout=60_000)
        before = page.locator(POINTS).count()
        assert before > 0, "the live Pareto plot shows no points after running the notebook"

        # untick two of the three steps the notebook ticked, as a user would: Run then measures the baseline and
        # the ONNX export only (the kernel reads the boxes' state from the browser; and Run takes half as long)
        for label in ("quantize_dynamic", "cpu: ov-int8-static"):
            box = page.get_by_role("checkbox", name=label, exact=True)
            box.scroll_into_view_if_needed()
            box.uncheck()
        run = page.locator("button.jupyter-button", has_text="Run").first
        run.scroll_into_view_if_needed()
        run.click()
        _wait(lambda: page.locator(POINTS).count() > before, 300, "new points after pressing Run", page)
        _wait(lambda: not run.is_disabled(), 300, "the run to finish", page)
        plot = page.locator(".js-plotly-plot").first
        plot.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "quickstart.png"))
        after = page.locator(POINTS).count()
        status = page.locator(".widget-html-content", has_text="done:").first.inner_text()
    except Exception:
        page.screenshot(path=str(shots / "failure.png"))
        raise
    finally:
        page.close()
    assert after > before
    assert status.strip().splitlines()[-1].startswith("done: 2 rows"), status   # the baseline and the export
    assert (shots / "quickstart.png").stat().st_size > 20_000
    assert not [e for e in errors if "plotly" in e.lower() or "widget" in e.lower()], errors


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
def test_notebook_study_reports_draw_every_figure_on_sane_axes(chromium, tmp_path, study, figures, rewrite):
    import json

    from workbench.ui.report import build_report

    studies = REPO / "tests" / "ui" / "studies"
    folder = tmp_path / study
    folder.mkdir()
    rows = [json.loads(line) for line in (studies / f"{study}.jsonl").read_text().splitlines() if line.strip()]
    rows = rewrite(rows) if rewrite else rows
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(studies / f"{study}.environments.json", folder / "environments.json")
    drawn = _render(chromium, build_report(folder), figures, f"report-{study}{'-rewritten' if rewrite else ''}.png")
    assert len(drawn) == figures, [f["title"] for f in drawn]
    assert [p for f in drawn for p in _check_axes(f)] == []


def _render(chromium, page_path: Path, figures: int, shot: str, script: str = AXES):
    """Open a report in a page of the module's chromium, wait for ``figures`` plots, return ``script``'s reading."""
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(page_path.as_uri())
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {figures}",
                               timeout=60_000)
        drawn = page.evaluate(script)
        page.screenshot(path=str(_shots() / shot), full_page=True)
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
def test_decision_report_draws_the_pareto_front_on_sane_axes(chromium, tmp_path, fixture, rows_of, figures):
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
    drawn, x_axes = _render(chromium, build_report(folder), figures, f"report-decision-{Path(fixture).stem}.png",
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
