"""`workbench load --search [--write-config]`: the search from the shell, its bad input, and the bundle it updates."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))  # demo_bundle, shared with tests/serving

import pytest  # noqa: E402

from workbench.cli import main  # noqa: E402

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)


def test_write_config_needs_search(capsys):
    assert main(["load", "no-such-bundle", "--slo-ms", "50", "--write-config"]) == 2
    assert "add --search" in capsys.readouterr().err


@pytest.mark.integration
def test_search_within_a_budget_writes_the_winner(tmp_path, monkeypatch, capsys):
    from demo_bundle import copy_bundle

    from workbench.serving.bundle.verify import load_manifest, verify_bundle

    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    bundle = copy_bundle(tmp_path / "bundle")
    # A 1 s budget: the exported config is always tried (the baseline), nothing after the budget runs out.
    code = main(["load", str(bundle), "--slo-ms", "2000", "--search", "--small-search", "--budget-s", "1",
                 "--max-points", "2", "--write-config", "--study", "s"])
    out, err = capsys.readouterr()
    results = tmp_path / "artifacts" / "s" / "results.jsonl"
    if code != 0 and not results.is_file():
        # refused before any climb (the one-at-a-time capacity could not be measured cleanly on a busy machine):
        # still a one-line error naming the problem, and the bundle untouched
        assert code == 2 and err.startswith("workbench load: error:") and "load" not in load_manifest(bundle), err
        return
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    summaries = [r for r in rows if r["scenario"] == "load-search"]
    assert [r["stage"] for r in summaries][:1] == ["exported"] and "not tried (time budget)" in out
    if code == 0:   # the winner (the exported config) climbed again after the search: the figure written
        manifest = load_manifest(bundle)
        assert [r["stage"] for r in summaries] == ["exported", "confirm"]
        assert manifest["load"]["goodput_per_s"] == summaries[1]["goodput_per_s"] and verify_bundle(bundle).ok
        assert manifest["load"]["confirmed"] and "confirmed winner" in out
        assert "wrote b" in out and "MODEL_CARD.md" in out
    else:  # a loaded machine can leave even half the capacity client-bound: a clear error, the bundle untouched
        assert code == 2 and "no candidate met the SLO" in err and "load" not in load_manifest(bundle)
        assert [r["stage"] for r in summaries] == ["exported"]
