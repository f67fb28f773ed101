"""A study without Ray: the same jobs run here, rows appended as measured, resumable, priced per instance."""
import json

import pytest
import yaml

from workbench.cluster import cheapest_meeting_slo, parse_spec, run_study
from workbench.cluster.jobs import expected_variant_id
from workbench.measure.cost import get_price

SPEC = {
    "study": "local-study", "task": "text-classification", "local_instance": "c7a.large",
    "variants": {"baseline": [], "int8": [{"quantize_dynamic": {}}]},
    "points": {"batch_sizes": [1, 4], "seq_len": 32},
    "measure": {"eval_limit": 16, "time_budget_s": 0.3, "threads": 1},
    "slo": {"ms": 10_000, "percentile": "p50"},
}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    spec = parse_spec(SPEC)
    return spec, root, run_study(spec, root=root, progress=False)


def test_local_study_measures_every_point_once_with_its_environment(first_run):
    spec, root, table = first_run
    rows = table.rows
    assert [(r["variant_name"], r["batch_size"]) for r in rows] == [("baseline", 1), ("baseline", 4), ("int8", 1),
                                                                   ("int8", 4)]
    assert not any(r.get("failed") for r in rows)
    assert {r["instance"] for r in rows} == {"c7a.large"} and {r["seq_len"] for r in rows} == {32}
    # quality once per variant (it does not depend on the timing batch), at the first batch size
    assert [r.get("quality_n") for r in rows] == [16, None, 16, None]
    # the planned ids are the ids apply() gave: a node rebuilding the recipe measures the same variant
    assert rows[2]["variant_id"] == expected_variant_id("text-classification", spec.recipe("int8"), "cpu")
    assert rows[2]["precision"] == "int8" and rows[0]["precision"] == "fp32"
    envs = json.loads((root / "local-study" / "environments.json").read_text())
    assert set(envs) == {rows[0]["environment_id"]} and "environment" not in rows[0]   # kept beside, not per row
    assert all(r["started_at"] < r["ended_at"] for r in rows)


def test_rerun_skips_measured_points_and_redo_measures_again(first_run):
    spec, root, _ = first_run
    again = run_study(spec, root=root, progress=False)
    assert len(again.rows) == 4                     # nothing new: every point is in the table for this environment
    redone = run_study(spec, root=root, redo=True, progress=False)
    assert len(redone.rows) == 8 and all(r.get("remeasure") == 1 for r in redone.rows[4:])


def test_cheapest_hardware_prices_each_row_with_its_own_instance(first_run):
    _, _, table = first_run
    rows = [dict(r) for r in table.rows[:4]] + [{**r, "instance": "c7i.xlarge"} for r in table.rows[:4]]
    lines = cheapest_meeting_slo(rows, slo_ms=10_000, percentile="p50")
    assert [x["instance"] for x in lines] == ["c7a.large", "c7i.xlarge"]   # same speed: the cheaper $/hour first
    best = lines[0]
    row = next(r for r in rows if r["variant_id"] == best["variant_id"] and r["batch_size"] == best["batch_size"]
               and r["instance"] == "c7a.large")
    expected = get_price("c7a.large").usd_per_hour / (row["throughput_per_s"] * 3600) * 1e6
    assert best["usd_per_1m_requests"] == pytest.approx(expected, rel=1e-3)
    assert best["usd_per_1m_requests"] == min(x["usd_per_1m_requests"] for x in lines)
    tight = cheapest_meeting_slo(rows, slo_ms=1e-6, percentile="p50")
    assert not any(x["meets_slo"] for x in tight) and "no point meets p50" in tight[0]["reason"]


def test_study_cli_prints_the_cheapest_hardware(tmp_path, capsys):
    from workbench.cli import main

    spec = {**SPEC, "study": "cli-study", "variants": {"baseline": []}, "points": {"batch_sizes": [2], "seq_len": 16}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["study", str(path), "--root", str(tmp_path / "art")]) == 0
    out = capsys.readouterr().out
    assert "1 rows measured now (0 failed)" in out and "cheapest hardware meeting p50 <= 10000 ms" in out
    assert "c7a.large" in out and f"wrote {tmp_path / 'art' / 'cli-study' / 'results.jsonl'}" in out
    assert main(["study", str(tmp_path / "missing.yaml")]) == 2
