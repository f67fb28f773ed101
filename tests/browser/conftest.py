"""What the browser tests share: Debian's chromium (playwright's own browser download fails on machines like this
one), one headless instance per test module, and the folder screenshots go to."""
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps"]


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Debian chromium is not installed (.ci/run installs it: apt-get install -y chromium)"
        if os.environ.get("WORKBENCH_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


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


@pytest.fixture
def shots() -> Path:
    """Screenshots go under the test's artifacts dir (conftest's ``_artifacts_in_tmp``)."""
    folder = Path(os.environ["WORKBENCH_ARTIFACTS"]) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
