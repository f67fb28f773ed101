"""Real browser: JupyterLab (loopback, token) + headless Debian chromium driven by playwright.

Opens the quickstart, runs all cells, presses Run in the panel, waits until the live plotly chart shows more
points, and saves a screenshot under the test's artifacts dir. The server is stopped whatever happens. (The HTML
reports' figures are checked in test_browser_reports.py.)
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

REPO = Path(__file__).resolve().parents[2]
POINTS = ".js-plotly-plot .scatterlayer .trace .points path"


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


def test_quickstart_in_real_browser(chromium, lab, tmp_path, shots):
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
