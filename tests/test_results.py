import json

import pytest

from workbench.measure.environment import environment_id
from workbench.results import ResultsTable, latest_rows, load_environments, pareto_front


def test_rows_are_saved_as_they_are_appended(tmp_path):
    table = ResultsTable.for_study("s", root=tmp_path, environment={"cpu": "x"})
    table.append({"variant": "a", "latency_p50_ms": 2.0, "quality": 0.8})
    # A second process (or a crash) sees the row already on disk.
    reloaded = ResultsTable.load(tmp_path / "s")
    assert [r["variant"] for r in reloaded] == ["a"]
    # The environment is saved beside the rows (keyed by its id; every environment kept, see below) and the row
    # names it. This used to assert one environment.json, overwritten by every run.
    env_id = environment_id({"cpu": "x"})
    saved_envs = json.loads((tmp_path / "s" / "environments.json").read_text())
    assert saved_envs == {env_id: {"cpu": "x", "environment_id": env_id}}
    assert reloaded.rows[0]["environment_id"] == env_id
    table.append({"variant": "b", "latency_p50_ms": 1.0, "quality": 0.7})
    assert len(ResultsTable.for_study("s", root=tmp_path)) == 2


def test_a_row_cut_off_by_a_crash_is_dropped_but_corruption_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"variant": "a"}\n{"variant": "b", "lat')
    assert len(ResultsTable.load(path)) == 1
    path.write_text('{"variant": "a"\n{"variant": "b"}\n')
    with pytest.raises(ValueError, match="corrupt"):
        ResultsTable.load(path)
    with pytest.raises(FileNotFoundError, match="workbench measure"):
        ResultsTable.load(tmp_path / "missing")


def test_pareto_front_accuracy_and_perplexity():
    rows = [{"v": "slow-good", "latency_p50_ms": 10, "quality": 0.9},
            {"v": "fast-bad", "latency_p50_ms": 1, "quality": 0.6},
            {"v": "dominated", "latency_p50_ms": 12, "quality": 0.85},
            {"v": "mid", "latency_p50_ms": 5, "quality": 0.8},
            {"v": "failed", "latency_p50_ms": 0.1, "quality": 0.99, "failed": True},
            {"v": "no-quality", "latency_p50_ms": 0.5}]
    assert [r["v"] for r in pareto_front(rows)] == ["fast-bad", "mid", "slow-good"]
    ppl = [{"v": "a", "latency_p50_ms": 1, "quality": 30.0, "higher_is_better": False},
           {"v": "b", "latency_p50_ms": 2, "quality": 20.0, "higher_is_better": False},
           {"v": "c", "latency_p50_ms": 3, "quality": 25.0, "higher_is_better": False}]
    assert [r["v"] for r in pareto_front(ppl)] == ["a", "b"]


def test_to_text_lists_rows():
    text = ResultsTable(rows=[{"variant": "a", "latency_p50_ms": 1.23456}]).to_text()
    assert "variant" in text and "1.235" in text


# ---- every environment kept, each row names its own -----------------------------------------------------------------

def test_every_environment_a_study_saw_is_kept_and_rows_name_their_own(tmp_path):
    laptop = {"cpu": "Laptop CPU", "cpu_isa": ["avx2"], "packages": {"torch": "2.9"}, "hostname": "a"}
    server = {"cpu": "Server CPU", "cpu_isa": ["avx512f"], "packages": {"torch": "2.9"}, "hostname": "b"}
    ResultsTable.for_study("s", root=tmp_path, environment=laptop).append({"variant": "a", "latency_p50_ms": 2.0})
    ResultsTable.for_study("s", root=tmp_path, environment=server).append({"variant": "a", "latency_p50_ms": 1.0})
    ResultsTable.for_study("s", root=tmp_path, environment=laptop).append({"variant": "b", "latency_p50_ms": 3.0})
    rows = ResultsTable.load(tmp_path / "s").rows
    ids = [r["environment_id"] for r in rows]
    assert ids[0] == ids[2] != ids[1]                        # the laptop's rows stay the laptop's
    envs = load_environments(tmp_path / "s")
    assert set(envs) == set(ids)                             # both machines kept, not only the latest
    assert envs[ids[0]]["cpu"] == "Laptop CPU" and envs[ids[1]]["cpu"] == "Server CPU"
    assert not list((tmp_path / "s").glob(".environments.json.tmp-*"))   # written atomically
    # opening a study without appending records nothing
    ResultsTable.for_study("s", root=tmp_path, environment={"cpu": "never used"})
    assert len(load_environments(tmp_path / "s")) == 2


def test_a_study_with_the_old_single_environment_file_stays_readable(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "results.jsonl").write_text(json.dumps({"variant": "a", "latency_p50_ms": 2.0}) + "\n")
    (folder / "environment.json").write_text(json.dumps({"cpu": "Old CPU"}))
    table = ResultsTable.for_study("old", root=tmp_path, environment={"cpu": "New CPU"})
    table.append({"variant": "b", "latency_p50_ms": 1.0})
    envs = load_environments(folder)
    old_id, new_id = environment_id({"cpu": "Old CPU"}), environment_id({"cpu": "New CPU"})
    assert envs[old_id]["cpu"] == "Old CPU" and envs[old_id]["legacy_file"] == "environment.json"
    assert envs[new_id]["cpu"] == "New CPU"
    rows = ResultsTable.load(folder).rows
    assert "environment_id" not in rows[0] and rows[1]["environment_id"] == new_id   # old row not re-attributed


# ---- Pareto fronts within comparable groups -------------------------------------------------------------------------

def test_pareto_front_compares_only_rows_of_one_task_device_batch_and_length():
    common = {"task": "t", "device": "cpu", "seq_len": 128, "environment_id": "e1"}
    rows = [{**common, "v": "b1-fast", "batch_size": 1, "latency_p50_ms": 1.0, "quality": 0.80},
            {**common, "v": "b1-good", "batch_size": 1, "latency_p50_ms": 2.0, "quality": 0.90},
            {**common, "v": "b1-dominated", "batch_size": 1, "latency_p50_ms": 3.0, "quality": 0.85},
            # batch 8 is slower per call by nature: it must not be "dominated" by batch-1 rows
            {**common, "v": "b8", "batch_size": 8, "latency_p50_ms": 5.0, "quality": 0.85},
            {**common, "v": "b1-seq512", "batch_size": 1, "seq_len": 512, "latency_p50_ms": 9.0, "quality": 0.85},
            {**common, "v": "b1-cuda", "batch_size": 1, "device": "cuda", "latency_p50_ms": 4.0, "quality": 0.7},
            {**common, "v": "b1-other-machine", "batch_size": 1, "environment_id": "e2", "latency_p50_ms": 2.5,
             "quality": 0.85}]
    front = [r["v"] for r in pareto_front(rows)]
    assert sorted(front) == ["b1-cuda", "b1-fast", "b1-good", "b1-other-machine", "b1-seq512", "b8"]
    assert [r["v"] for r in ResultsTable(rows=rows).pareto_front()] == front
    # one group of the caller's choosing, or none at all (every row against every other)
    assert [r["v"] for r in pareto_front(rows, group_by=())] == ["b1-fast", "b1-good"]
    by_batch = [r["v"] for r in pareto_front(rows, group_by=("batch_size",))]
    assert sorted(by_batch) == ["b1-fast", "b1-good", "b8"]


# ---- resume without duplicates --------------------------------------------------------------------------------------

def test_saved_points_are_found_per_variant_point_and_environment(tmp_path):
    table = ResultsTable.for_study("r", root=tmp_path, environment={"cpu": "here"})
    point = {"variant_id": "v1", "scenario": "batching", "seq_len": 128, "output_len": None, "threads": 2}
    table.append({**point, "batch_size": 1, "latency_p50_ms": 1.0})
    table.append({**point, "batch_size": 4, "failed": True, "error": "oom"})
    assert table.has_point("v1", "batching", 1, 128) and table.has_point("v1", "batching", 4, 128)
    assert not table.has_point("v1", "batching", 1, 64)                   # another length
    assert not table.has_point("v2", "batching", 1, 128)                  # another variant
    assert not table.has_point("v1", "latency", 1, 128)                   # another scenario
    assert not table.has_point("v1", "batching", 1, 128, 16)              # another output length
    assert not table.has_point("v1", "batching", 1, 128, threads=4)       # timed with other threads
    assert table.missing_points("v1", "batching", [(1, 128), (2, 128), (4, 128)]) == [(2, 128)]
    # a timing its row flags as unstable is measured again (a quieter re-run replaces it)
    table.append({**point, "batch_size": 8, "latency_p50_ms": 3.0, "stable": False})
    assert not table.has_point("v1", "batching", 8, 128) and table.has_point("v1", "batching", 8, 128,
                                                                            include_unstable=True)
    elsewhere = ResultsTable.for_study("r", root=tmp_path, environment={"cpu": "another machine"})
    assert not elsewhere.has_point("v1", "batching", 1, 128)              # measured on another machine only
    assert elsewhere.has_point("v1", "batching", 1, 128, environment_id=environment_id({"cpu": "here"}))


def test_a_repeated_point_says_it_remeasured_and_latest_keeps_the_newest(tmp_path):
    table = ResultsTable.for_study("r", root=tmp_path, environment={"cpu": "here"})
    point = {"variant_id": "v1", "variant": "torch-fp32", "scenario": "latency", "batch_size": 1, "seq_len": 128}
    first = table.append({**point, "latency_p50_ms": 2.0})
    other = table.append({**point, "batch_size": 8, "latency_p50_ms": 9.0})
    again = table.append({**point, "latency_p50_ms": 1.5})
    assert "remeasure" not in first and "remeasure" not in other and again["remeasure"] == 1
    assert [r["latency_p50_ms"] for r in table.latest()] == [9.0, 1.5]
    saved = ResultsTable.load(table.path)
    assert saved.rows[-1]["remeasure"] == 1 and len(latest_rows(saved.rows)) == 2
    assert table.saved_point("v1", "latency", 1, 128)["latency_p50_ms"] == 1.5   # the newest one


def test_to_text_heads_the_quality_columns_with_the_metric():
    ppl = ResultsTable(rows=[{"variant": "a", "metric": "perplexity", "quality": 21.5, "quality_ci_low": 20.0,
                              "quality_ci_high": 23.0, "latency_p50_ms": 1.0}]).to_text()
    header = ppl.splitlines()[0].split()
    assert header[:4] == ["variant", "perplexity", "perplexity_ci_low", "perplexity_ci_high"] and "quality" not in ppl
    mixed = ResultsTable(rows=[{"variant": "a", "metric": "perplexity", "quality": 21.5},
                               {"variant": "b", "metric": "accuracy", "quality": 0.8}]).to_text()
    assert mixed.splitlines()[0].split()[:3] == ["variant", "metric", "quality"]
    assert "perplexity" in mixed.splitlines()[1] and "accuracy" in mixed.splitlines()[2]
