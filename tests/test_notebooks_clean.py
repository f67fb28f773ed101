"""Every notebook is committed clean (no outputs) and runs under nbval from README's test command."""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_make_test_runs_them_all_under_nbval():
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)
    recipe = (REPO / "Makefile").read_text().split("\ntest:")[1].split("\n\n")[0].replace("\\\n", " ")
    # both passes collect the folder (so new notebooks join); markers decide which pass runs which notebook
    assert len(re.findall(r"pytest [^\n]*?\btests notebooks\s+\$\(NBVAL\)", recipe)) == 2, recipe
    assert "--nbval-lax" in (REPO / "Makefile").read_text() and (REPO / "notebooks" / "sanitize.cfg").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} keep outputs: clear them (Edit > Clear Outputs of All Cells) before committing"
    # Without a kernelspec JupyterLab stops at a 'Select Kernel' dialog instead of running the notebook.
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", f"{path.name}: set the Python 3 kernel"
