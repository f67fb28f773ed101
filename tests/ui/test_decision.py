"""The decision section of the report (workbench optimize's decision.json) and its Pareto figure, from fixtures."""
import json
import re
import shutil
from pathlib import Path

import pytest

from workbench.ui.decision import decision_section, load_decision
from workbench.ui.plots_decision import pareto_decision_figure
from workbench.ui.report import build_report

FIXTURES = Path(__file__).parent / "fixtures"
CLASSIFIER, LM = FIXTURES / "decision.json", FIXTURES / "decision_lm.json"


def _study(tmp_path, fixture: Path, rows=()) -> Path:
    folder = tmp_path / "opt"
    folder.mkdir(parents=True)
    shutil.copy(fixture, folder / "decision.json")
    if rows:
        (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _decision_part(page: str) -> str:
    return page.split("<h2>Decision</h2>", 1)[1].split("<h2>", 1)[0]


@pytest.mark.parametrize("fixture", [CLASSIFIER, LM])
def test_report_draws_the_decision_first_from_either_fixture(tmp_path, fixture):
    rows = [{"scenario": "optimize-screen", "stage": "screen", "arm": "torch-fp32", "batch_size": 1, "p50_ms": 8.5,
             "speedup": 1.0, "status": "measured"},
            {"scenario": "optimize-sweep", "stage": "sweep", "arm": "ov-fp32", "batch_size": 4,
             "latency_p99_ms": 44.0, "throughput_per_s": 91.0}]
    page = build_report(_study(tmp_path, fixture, rows)).read_text()
    decision = json.loads(fixture.read_text())
    assert page.index("<h2>Decision</h2>") < page.index("<p>From <code>")          # above the rows' provenance
    part = _decision_part(page)
    assert f"<h3>Pick: {decision['pick']['arm']}, batch {decision['pick']['batch_size']}</h3>" in part
    assert " → ".join(decision["pick"]["lineage"]) in part
    assert decision["cost_unit"] in part
    assert part.count("Plotly.newPlot") == 1                                          # the Pareto front
    for line in decision["skipped_for_budget"]:
        assert line in part
    # optimize's own rows get their own table, not the measurement section's "no figure" fallback
    search = page.split("<h2>Rows of the search</h2>", 1)[1].split("<h2>", 1)[0]
    assert "2 rows" in search and "ov-fp32" in search and "<th>p99 (ms)</th>" in search
    assert "No figure: the rows have no quality" not in page


def test_incomplete_run_shows_the_resume_banner_and_a_complete_one_does_not(tmp_path):
    lm = _decision_part(build_report(_study(tmp_path / "a", LM)).read_text())
    resume = json.loads(LM.read_text())["resume"]
    assert "Incomplete run" in lm and f"Resume with <code>{resume}</code>" in lm
    classifier = _decision_part(build_report(_study(tmp_path / "b", CLASSIFIER)).read_text())
    assert "Incomplete run" not in classifier


def test_every_arm_that_did_not_win_has_a_line_with_its_reason():
    decision = json.loads(CLASSIFIER.read_text())
    html = "\n".join(decision_section(decision))
    lines = html.split("<h3>Why the others lost</h3>", 1)[1].split("</ul>", 1)[0]
    items = re.findall(r"<li>(.*?)</li>", lines)
    losers = [a for a in decision["arms"] if a["outcome"] != "picked"]
    assert len(items) == len(losers) == 7
    for arm, item in zip(losers, items):
        assert f"<b>{arm['arm']}</b> ({arm['outcome']} at {arm['stage']}): " in item
        assert arm["why"].replace("%", "%") in item
    assert "ov-int8-static</b> (picked" not in lines


def test_nulls_read_as_absent_never_zero():
    lm = json.loads(LM.read_text())
    html = "\n".join(decision_section(lm))
    assert "— in a fresh run vs the baseline (selection run: 1.8x)" in html       # confirmed_speedup null
    assert "<th>bundle</th><td>—</td>" in html and "— (not run)" in html           # no bundle, no load check
    lm["pick"]["load_check"] = {"rate_per_s": 5.0, "tail_ms": None, "slo_met": None, "outcome": "client-limited",
                                "errors": None}
    assert ("open loop at 5 req/s: p90 —, — (client-limited), — errors"
            in "\n".join(decision_section(lm)))
    classifier = "\n".join(decision_section(json.loads(CLASSIFIER.read_text())))
    assert "g6.xlarge: —" in classifier and not re.search(r"\$0(?![.\d])", classifier)
    table = classifier.split("<h3>Why the others lost</h3>", 1)[1]
    compile_row = re.search(r"<tr><td class=''>torch-compile</td>(.*?)</tr>", table).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", compile_row)[2:7] == ["—"] * 5     # speed-up .. costs
    buy = classifier.split("<h3>Build vs buy</h3>", 1)[1]
    assert "12,000" in buy and "5,000,000" in buy                                   # per-day traffic, not 1.2e+04
    assert re.search(r"claude-haiku</td>.*?<td class=''>—</td><td class=''>—</td></tr>", buy)   # no traffic: no verdict


@pytest.mark.parametrize("text, expected", [
    ("{not json", "is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ("[1, 2]", "the top level is a list, not an object"),
    (b'{"schema": 1, "task": "\xff"}', "is not UTF-8 text (invalid start byte at byte 23)"),
    ('{"schema": 7}', "schema is 7; this workbench reads schema 1"),
    (json.dumps({**json.loads(CLASSIFIER.read_text()), "arms": [{"arm": "x", "outcome": "won"}]}),
     'arms[0] needs "arm" and an "outcome" of picked, lost, failed, skipped, not-applicable'),
    (json.dumps({**json.loads(CLASSIFIER.read_text()), "slo": {"ms": "fast"}}), '"slo" must be'),
    (json.dumps({**json.loads(CLASSIFIER.read_text()), "pareto": [{"arm": "a", "tail_ms": "31"}]}),
     "pareto[0].tail_ms must be a number or null, not '31'"),
])
def test_malformed_decision_is_a_clear_error_naming_the_file(tmp_path, text, expected):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "decision.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    (folder / "results.jsonl").write_text(json.dumps({"variant": "a", "latency_p50_ms": 1.0}) + "\n")
    with pytest.raises(ValueError) as err:
        build_report(folder)
    message = str(err.value)
    assert str(folder / "decision.json") in message and expected in message
    assert "rerun the same `workbench optimize` command" in message
    assert not (folder / "report.html").exists()


def test_pareto_figure_axes_have_units_and_ranges_cover_points_slo_and_limit():
    decision = json.loads(CLASSIFIER.read_text())
    fig = pareto_decision_figure(decision)
    layout = fig.layout
    assert layout.xaxis.title.text == "tail latency at p99 (ms)"
    assert layout.yaxis.title.text == "quality drop vs baseline (accuracy points, + is worse)"
    xs = [x for t in fig.data for x in t.x]
    ys = [y for t in fig.data for y in t.y]
    assert sorted(xs) == sorted(p["tail_ms"] for p in decision["pareto"])
    low, high = layout.xaxis.range
    assert 0 <= low <= min(xs) and max(xs + [50.0]) <= high <= 1.2 * 50.0          # the SLO line is in view
    low, high = layout.yaxis.range
    assert low <= min(ys) and max(ys + [1.0]) <= high and high - low < 3 * (1.0 - min(ys))
    assert [s.x0 for s in layout.shapes if s.yref == "paper"] == [50.0]            # the SLO, vertical
    assert [s.y0 for s in layout.shapes if s.xref == "paper"] == [1.0]             # the max drop, horizontal
    picked = next(t for t in fig.data if t.name == "ov-int8-static")
    assert list(picked.marker.size) == [18, 11] and list(picked.text) == ["b8", "b1"]
    assert "$0.42 on c7i.large, — on g6.xlarge (USD per 1M requests)" in picked.customdata[0][1]
    assert len({t.marker.symbol for t in fig.data}) == len(fig.data) == 3           # one marker per arm


def test_lm_figure_reads_the_metric_and_leaves_unmeasured_points_out():
    decision = json.loads(LM.read_text())
    decision["pareto"].append({"arm": "kv-int8", "batch_size": 1, "tail_ms": 40.0, "quality_drop": None})
    fig = pareto_decision_figure(decision)
    assert fig.layout.xaxis.title.text == "tail latency at p90 (ms)"
    assert fig.layout.yaxis.title.text.startswith("perplexity change vs baseline")
    assert "kv-int8" not in [t.name for t in fig.data]                              # no drop: not drawn at 0
    hover = next(t for t in fig.data if t.name == "hf-generate-fp32").customdata[0][1]
    assert hover == "— on c7i.large (USD per 1M output tokens)"


def test_a_study_with_only_a_decision_still_reports(tmp_path):
    page = build_report(_study(tmp_path, CLASSIFIER)).read_text()
    assert "<h2>Decision</h2>" in page and "0 rows" in page
