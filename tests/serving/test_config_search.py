"""Serving-config search (workbench.serving.load.config_search): configs, the grid, the climb, and one real search on the
demo bundle in Triton whose winner is written back into the bundle (config.pbtxt, card, manifest checksums)."""
import json

import pytest

from workbench.serving.load.search_space import ClimbSettings, SearchSpace, climb
from workbench.serving.bundle.serving_config import ServingConfig, edited_config_text

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)


def test_serving_config_validates_and_round_trips_through_config_pbtxt():
    from demo_bundle import demo_setup

    from workbench.serving.load.config_search import exported_config
    from workbench.serving.bundle.triton_config import check_model_config
    from workbench.serving.bundle.verify import load_manifest, model_paths

    with pytest.raises(ValueError, match="preferred_batch_sizes"):
        ServingConfig(max_batch_size=4, preferred_batch_sizes=(8,))
    with pytest.raises(ValueError, match="dynamic_batching"):
        ServingConfig(max_batch_size=4, dynamic_batching=False, max_queue_delay_us=10)
    with pytest.raises(ValueError, match="instance_count"):
        ServingConfig(instance_count=0)
    bundle = demo_setup()[3]
    manifest = load_manifest(bundle)
    text = model_paths(bundle, manifest)[0].read_text()
    want = ServingConfig(max_batch_size=16, preferred_batch_sizes=(16, 4, 4), max_queue_delay_us=2500,
                         instance_count=2, threads=1)
    assert want.preferred_batch_sizes == (4, 16)                       # sorted, duplicates dropped
    edited = check_model_config(edited_config_text(text, want, manifest["name"]), manifest["name"])
    assert ServingConfig.from_model_config(edited) == want
    assert edited.input == check_model_config(text).input               # tensors untouched
    alone = check_model_config(edited_config_text(text, ServingConfig.no_batching(4), manifest["name"]))
    assert not alone.HasField("dynamic_batching") and alone.max_batch_size == 4
    assert exported_config(bundle, manifest).max_queue_delay_us == 100_000   # the demo bundle's offline plan
    assert want.label() == "b16 q2500us pref[4, 16] x2 t1"


def test_search_space_is_coarse_then_fine_around_the_winner():
    space = SearchSpace(instance_counts=(1, 2), max_batch_sizes=(4, 8), queue_delay_fractions=(0.0, 0.1),
                        preferred=(False, True), cores=2)
    coarse = space.coarse(slo_ms=50)
    assert [(c.instance_count, c.max_batch_size, c.threads) for c in coarse] == [(1, 4, 2), (1, 8, 2), (2, 4, 1),
                                                                                 (2, 8, 1)]
    assert all(c.max_queue_delay_us == 0 and not c.preferred_batch_sizes for c in coarse)
    fine = space.fine(coarse[3], slo_ms=50)
    assert coarse[3] not in fine and len(fine) == 3
    assert {(c.max_queue_delay_us, c.preferred_batch_sizes) for c in fine} == {(0, (8,)), (5000, ()), (5000, (8,))}
    assert all(c.instance_count == 2 and c.max_batch_size == 8 for c in fine)
    with pytest.raises(ValueError, match="queue_delay_fractions"):
        SearchSpace(queue_delay_fractions=(2.0,))


def test_climb_brackets_the_highest_rate_that_meets_the_slo():
    tried = []

    def measure(rate):  # a server that holds the SLO up to 37 requests/s
        tried.append(rate)
        return None, {"meets_slo": rate <= 37}

    good, points = climb(measure, 10, ClimbSettings(growth=2, refine=3, max_points=12))
    assert tried[:3] == [10, 20, 40] and len(points) == 6             # up until 40 fails, then 3 bisections
    assert 20 <= good <= 37 and all(r <= 37 for r in tried if r <= good)
    assert good > 30                                                   # bisection moved past the last doubling
    tried.clear()
    good, _ = climb(lambda r: (tried.append(r), (None, {"meets_slo": r <= 3}))[1], 40,
                    ClimbSettings(growth=2, refine=0, measured=200, max_point_s=40))
    assert tried == [40, 20, 10, 5] and good is None                   # 2.5/s would take 80 s a point: stop
    good, points = climb(lambda r: (None, {"meets_slo": r <= 25}), 40, ClimbSettings(growth=2, refine=0))
    assert good == 20 and len(points) == 2                            # the start failed, half of it held: below it
    with pytest.raises(ValueError, match="200"):
        ClimbSettings(measured=50)


@pytest.mark.integration
def test_search_on_triton_tries_each_candidate_and_tags_its_rows(tmp_path):
    from demo_bundle import demo_setup

    from workbench.results import ResultsTable
    from workbench.serving.load.config_search import search_config

    table = ResultsTable()
    space = SearchSpace(instance_counts=(1,), max_batch_sizes=(4,), queue_delay_fractions=(0.0,), preferred=(False,))
    result = search_config(demo_setup()[3], slo_ms=2000, space=space, table=table, budget_s=600,
                           settings=ClimbSettings(growth=2, refine=0, max_points=2, warmup_s=0.2))
    print("\n" + result.to_text())
    assert [c.stage for c in result.candidates] == ["exported", "no-batching", "coarse"] and not result.skipped
    for cand in result.candidates:
        assert 1 <= len(cand.points) <= 2 and cand.points[0].offered_rate_per_s == pytest.approx(
            0.5 * result.capacity_per_s, rel=1e-3)                     # every climb starts at half the capacity
        if cand.goodput_per_s is None:                                  # a 2 s SLO only fails when the (loaded)
            assert cand.rows[0]["slo_outcome"] == "client-limited"      # client could not keep up
        else:   # the highest rate that met the SLO (below the start when the client could not keep the start)
            met = [r["offered_rate_per_s"] for r in cand.rows if r["meets_slo"]]
            assert cand.p99_at_goodput_ms < 2000 and cand.goodput_per_s == pytest.approx(max(met))
    points = [r for r in table.rows if r["scenario"] == "load"]
    summaries = [r for r in table.rows if r["scenario"] == "load-search"]
    tried = result.candidates + ([result.confirmed] if result.confirmed else [])
    assert len(summaries) == len(tried) and len(points) == sum(len(c.points) for c in tried)
    assert {r["serving_config"] for r in points} == {c.config.label() for c in result.candidates}
    assert all(r["n_measured"] >= 200 and r["latency_p99_ms"] is not None for r in points)
    assert all(r["client_cpu_share"] is not None and r["client_apart"] is not None for r in points)
    assert [r["config_dynamic_batching"] for r in summaries[:3]] == [True, False, True]
    # The winner is climbed again on a fresh server; that is what the manifest quotes, against the better baseline.
    if result.winner is not None:
        assert summaries[-1]["stage"] == "confirm" and result.confirmed.config == result.winner.config
        quoted = result.as_dict()
        assert quoted["goodput_per_s"] == result.confirmed.goodput_per_s and quoted["confirmed"]
        assert quoted["best_baseline"]["stage"] in ("exported", "no-batching")
        base = max(result.exported.goodput_per_s or 0, result.no_batching.goodput_per_s or 0)
        assert quoted["best_baseline"]["goodput_per_s"] == (base or None)


def test_winner_is_written_into_the_bundle_atomically_with_checksums(tmp_path):
    from demo_bundle import copy_bundle

    from workbench.serving.bundle.write_config import write_serving_config
    from workbench.serving.bundle.verify import BundleError, load_manifest, model_paths, verify_bundle
    from workbench.util.numbers import format_value

    bundle = copy_bundle(tmp_path / "bundle")
    weights = model_paths(bundle, load_manifest(bundle))[1]
    inode = weights.stat().st_ino
    win = ServingConfig(max_batch_size=8, preferred_batch_sizes=(8,), max_queue_delay_us=2000, instance_count=2,
                        threads=1)
    search = {"slo_ms": 50.0, "percentile": "p99", "attainment": 0.99, "winner": win.as_dict(),
              "goodput_per_s": 123.4, "knee_per_s": 100.0, "p99_at_goodput_ms": 41.5, "measured_at": "now",
              "curve": [{"offered_per_s": 100.0, "p50_ms": 9.0, "p99_ms": 30.0, "within_slo": 1.0, "valid": True}],
              "candidates": [{"serving_config": win.label(), "stage": "fine", "goodput_per_s": 123.4,
                              "knee_per_s": 100.0, "p99_at_goodput_ms": 41.5}], "skipped": []}
    rows = [{"scenario": "load", "offered_rate_per_s": 100.0, "latency_p99_ms": 30.0}]
    write_serving_config(bundle, search, rows)
    manifest = load_manifest(bundle)
    assert verify_bundle(bundle).ok                                     # every checksum matches the new files
    text = model_paths(bundle, manifest)[0].read_text()
    assert "max_batch_size: 8" in text and "count: 2" in text and "max_queue_delay_microseconds: 2000" in text
    assert manifest["batching"]["source"] == "load search" and manifest["batching"]["instance_count"] == 2
    assert manifest["batching"]["offline_plan"]["max_queue_delay_us"] == 100_000
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "searched under load" in card and win.label() in card and "replaced by the search above" in card
    assert f"Goodput {format_value(123.4)} requests/s" in card and "p99 at goodput 41.5 ms" in card
    saved = [json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines()]
    assert [r for r in saved if r.get("scenario") == "load"] == rows
    assert weights.stat().st_ino == inode or weights.read_bytes()       # weights linked or copied, never rewritten
    assert not list(tmp_path.glob(".bundle*"))                         # temp folder swapped in and gone
    write_serving_config(bundle, search, rows)                          # again: old load rows replaced, not doubled
    saved = [json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines()]
    assert sum(r.get("scenario") == "load" for r in saved) == 1
    (bundle / "MODEL_CARD.md").write_text("edited")
    with pytest.raises(BundleError, match="hash mismatch"):
        write_serving_config(bundle, search, rows)
    with pytest.raises(BundleError, match="no config"):
        write_serving_config(copy_bundle(tmp_path / "b2"), {**search, "winner": None})


@pytest.mark.integration
def test_server_dying_mid_search_keeps_the_points_done_and_says_so(monkeypatch):
    import os
    import signal

    from demo_bundle import demo_setup

    import workbench.serving.load.sweep as load_sweep
    import workbench.serving.bundle.serve_check as serve_check
    from workbench.results import ResultsTable
    from workbench.serving.load.config_search import search_config
    from workbench.serving.load.client import LoadError

    servers, real_enter, real_measure = [], serve_check.TritonServer.__enter__, load_sweep.measure_point

    def enter(self):
        servers.append(self)
        return real_enter(self)

    def measure_then_kill(*args, **kwargs):  # the first point completes, then the server is killed under it
        out = real_measure(*args, **kwargs)
        os.killpg(servers[-1].process.pid, signal.SIGKILL)
        servers[-1].process.wait()
        return out

    monkeypatch.setattr(serve_check.TritonServer, "__enter__", enter)
    monkeypatch.setattr(load_sweep, "measure_point", measure_then_kill)
    table = ResultsTable()
    space = SearchSpace(instance_counts=(1,), max_batch_sizes=(4,), queue_delay_fractions=(0.0,), preferred=(False,))
    with pytest.raises(LoadError, match="Triton died while serving .* 1 points done are kept"):
        search_config(demo_setup()[3], slo_ms=2000, space=space, table=table,
                      settings=ClimbSettings(growth=2, refine=0, max_points=2, warmup_s=0.2))
    assert [r["scenario"] for r in table.rows] == ["load"]              # the point measured is in the table
    assert all(s.process.poll() is not None for s in servers)           # no server left running
