"""The architecture matrix as tests: every (architecture, step) cell ends ok or a stated n/a, and the committed
table (docs/architecture_matrix.md) is what this run produced. Cells come from scripts/architecture_matrix.py,
so the script and the tests cannot drift; one architecture's cells share its export (built once per module)."""
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import architecture_matrix as am  # noqa: E402

pytestmark = pytest.mark.slow  # ~3 min on 2 cores for all 17 architectures


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """{arch: {step: cell}}, each architecture run once on first use."""
    root, table = tmp_path_factory.mktemp("matrix"), {}

    def row(arch: str) -> dict[str, str]:
        if arch not in table:
            table[arch] = am.run_arch(arch, root / arch)
        return table[arch]

    row.table = table
    return row


@pytest.fixture(autouse=True)
def _matrix_artifacts(monkeypatch, tmp_path_factory):
    # Anything a step writes without an out_dir lands in one module-wide folder, not per-test ones.
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path_factory.getbasetemp() / "matrix-artifacts"))


@pytest.mark.parametrize("step", am.STEPS)
@pytest.mark.parametrize("arch", list(am.ARCHS))
def test_cell_is_ok_or_not_applicable(rows, arch, step):
    cell = rows(arch)[step]
    assert cell == "ok" or cell.startswith(("ok: ", "n/a: ")), f"{arch} x {step}: {cell}"
    if cell.startswith("n/a"):
        assert len(cell) > len("n/a: ") + 10, f"{arch} x {step}: a not-applicable cell must say why"


def test_committed_table_is_what_the_run_produced(rows):
    table = {arch: rows(arch) for arch in am.ARCHS}
    committed = am.DOC.read_text()
    assert committed == am.render(table), ("docs/architecture_matrix.md is stale: regenerate it with "
                                           "`python scripts/architecture_matrix.py`")


def test_roles_cover_the_issue_architectures():
    roles = {role: sorted(a for a, (r, _, _) in am.ARCHS.items() if r == role) for role in
             ("encoder", "decoder", "encoder-decoder")}
    assert roles["encoder"] == ["albert", "bert", "deberta-v2", "distilbert", "electra", "roberta", "xlm-roberta"]
    assert roles["decoder"] == ["gemma", "gpt-neox", "gpt2", "llama", "mistral", "opt", "phi3", "qwen2"]
    assert roles["encoder-decoder"] == ["bart", "t5"]
