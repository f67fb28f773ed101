"""A study on a real two-node Ray cluster started here (loopback only): same rows as the local path, one
measurement at a time per node, jobs at the node's full width, a killed worker loses nothing, bad targets and
badly set-up nodes fail before anything runs."""
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from workbench.cluster import parse_spec, run_study  # noqa: E402
from workbench.cluster.runner import check_nodes, target_cpus  # noqa: E402
from workbench.cluster.spec import SpecError, Target  # noqa: E402

NODE_CPUS = 2   # each node advertises 2 CPUs: a job must run with 2 threads, not Ray's one-thread default

pytestmark = pytest.mark.integration  # starts a local Ray cluster

SPEC = {
    "study": "ray-study", "task": "text-classification",
    "variants": {"baseline": []},
    "points": {"batch_sizes": [1, 4], "seq_len": 32},
    "measure": {"eval_limit": 16, "time_budget_s": 0.3, "threads": 1},
    "targets": [{"name": "intel", "instance": "c7i.large", "resources": {"instance:c7i.large": 1}},
                {"name": "amd", "instance": "c7a.large", "resources": {"instance:c7a.large": 1}}],
}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # Loopback only: Ray binds its node to 127.0.0.1 when told clusters are "not enabled" for non-local use.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": NODE_CPUS, "resources": {"timing_slot": 1, "instance:c7i.large": 1}})
    c.add_node(num_cpus=NODE_CPUS, resources={"timing_slot": 1, "instance:c7a.large": 1})
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    # This module's job wrappers travel to the workers by value (the workers cannot import tests/).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield c
    ray.shutdown()
    c.shutdown()
    os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


def _overlaps(rows):
    """Pairs of rows measured at the same time on the same node."""
    by_node = {}
    for r in rows:
        by_node.setdefault(r["node"], []).append((r["started_at"], r["ended_at"]))
    return [(a, b) for spans in by_node.values() for a, b in zip(sorted(spans), sorted(spans)[1:]) if b[0] < a[1]]


@pytest.mark.integration
def test_ray_study_gives_the_local_rows_one_measurement_per_node(cluster, tmp_path):
    spec = parse_spec(SPEC)
    table = run_study(spec, ray_address=cluster.address, root=tmp_path, progress=False)
    rows = table.rows
    assert len(rows) == 4 and not any(r.get("failed") for r in rows)
    assert sorted((r["instance"], r["batch_size"]) for r in rows) == [("c7a.large", 1), ("c7a.large", 4),
                                                                      ("c7i.large", 1), ("c7i.large", 4)]
    # each target ran on the node that carries its label: two targets, two nodes
    nodes = {t: {r["node"] for r in rows if r["target"] == t} for t in ("intel", "amd")}
    assert len(nodes["intel"]) == 1 and len(nodes["amd"]) == 1 and nodes["intel"] != nodes["amd"]
    assert _overlaps(rows) == []                      # the timing slot: never two measurements on one node at once
    # the same rows (modulo timings) as the local path: same variant, points and quality on the same examples
    local = run_study(parse_spec({**SPEC, "targets": [], "study": "local-twin"}), root=tmp_path, progress=False).rows
    key = lambda r: (r["variant_id"], r["batch_size"], r["seq_len"], r.get("quality"))  # noqa: E731
    assert {key(r) for r in rows} == {key(r) for r in local}
    again = run_study(spec, ray_address=cluster.address, root=tmp_path, progress=False)
    assert len(again.rows) == 4                       # resumed: every point already measured in its environment


def _dies_first_time(spec, job):
    """Kill the worker process on a job's first attempt (a marker file remembers it), then measure normally."""
    from workbench.cluster.jobs import run_job

    marker = Path(spec.shared_path) / f"died-{job.variant}-{job.batch_size}-{job.target.name}"
    if job.variant == "doomed" or not marker.exists():
        marker.touch()
        os._exit(1)
    return run_job(spec, job)


@pytest.mark.integration
def test_a_ray_job_without_threads_runs_at_the_nodes_width(cluster, tmp_path):
    """No ``threads:`` in the spec: the job asks Ray for its node's CPUs, so Ray's OMP_NUM_THREADS is the node's
    width (with num_cpus=0 it was 1), and the row records the threads that ran."""
    measure = {k: v for k, v in SPEC["measure"].items() if k != "threads"}
    spec = parse_spec({**SPEC, "study": "width", "measure": measure, "points": {"batch_sizes": [1]},
                       "shared_path": str(tmp_path / "shared")})
    rows = run_study(spec, ray_address=cluster.address, root=tmp_path, progress=False).rows
    assert len(rows) == 2 and not any(r.get("failed") for r in rows)
    assert [r["threads"] for r in rows] == [NODE_CPUS, NODE_CPUS], [(r["node"], r["threads"]) for r in rows]


@pytest.mark.integration
def test_a_killed_worker_is_retried_once_then_recorded_as_failed(cluster, tmp_path):
    spec = parse_spec({**SPEC, "study": "faults", "shared_path": str(tmp_path), "points": {"batch_sizes": [2]},
                       "targets": SPEC["targets"][:1], "variants": {"baseline": [], "doomed": []}})
    table = run_study(spec, ray_address=cluster.address, root=tmp_path, measure_fn=_dies_first_time, progress=False)
    by_name = {r["variant_name"]: r for r in table.rows}
    assert not by_name["baseline"].get("failed") and by_name["baseline"]["latency_p50_ms"] > 0   # retried, measured
    assert by_name["doomed"]["failed"] and by_name["doomed"]["error"].startswith("WorkerCrashedError (after one retry)")
    saved = (tmp_path / "faults" / "results.jsonl").read_text().splitlines()
    assert len(saved) == 2                            # both outcomes on disk as they arrived


@pytest.mark.integration
def test_unknown_hardware_and_missing_cluster_fail_before_anything_runs(cluster, tmp_path):
    spec = parse_spec({**SPEC, "study": "bad", "targets": [{"name": "h100", "instance": "p5.48xlarge",
                                                             "resources": {"gpu:h100": 1}}]})
    with pytest.raises(SpecError, match=r"no node offers target 'h100'.*instance:c7a\.large.*instance:c7i\.large"):
        run_study(spec, ray_address=cluster.address, root=tmp_path, progress=False)
    assert not (tmp_path / "bad" / "results.jsonl").exists()
    import subprocess

    code = ("from workbench.cluster.runner import connect\n"
            "try:\n    connect('127.0.0.1:9')\nexcept RuntimeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "no Ray cluster at '127.0.0.1:9'" in out


def _node(resources, alive=True, ip="10.0.0.1"):
    return {"Alive": alive, "NodeManagerAddress": ip, "NodeID": "abcdef0123456789", "Resources": resources}


def test_one_measurement_per_node_is_checked_node_by_node():
    check_nodes([_node({"CPU": 4, "timing_slot": 1, "instance:c7i.large": 1}), _node({"CPU": 2})])   # fine
    check_nodes([_node({"CPU": 4, "timing_slot": 3, "instance:x": 1}, alive=False)])   # a dead node is not asked
    with pytest.raises(SpecError, match=r"10\.0\.0\.2 .*offers timing_slot=2"):
        check_nodes([_node({"CPU": 4, "timing_slot": 1}), _node({"CPU": 4, "timing_slot": 2}, ip="10.0.0.2")])
    with pytest.raises(SpecError, match=r"carries \['instance:c7a.large'\] but no timing_slot"):
        check_nodes([_node({"CPU": 4, "instance:c7a.large": 1})])
    with pytest.raises(SpecError, match=r"labelled \['gpu:h100'\] but Ray sees no GPU"):
        check_nodes([_node({"CPU": 4, "timing_slot": 1, "gpu:h100": 1})])


def test_a_job_asks_for_the_fewest_cpus_of_its_targets_nodes():
    target = Target(name="intel", instance="c7i.large", resources=(("instance:c7i.large", 1.0),))
    nodes = [_node({"CPU": 8, "timing_slot": 1, "instance:c7i.large": 1}),
             _node({"CPU": 4, "timing_slot": 1, "instance:c7i.large": 1}),
             _node({"CPU": 2, "timing_slot": 1, "instance:c7a.large": 1})]
    assert target_cpus(target, nodes) == 4


def test_shared_path_builds_under_a_folder_of_the_nodes_own(tmp_path, monkeypatch):
    """Two nodes building the same recipe under shared_path never write the same folder."""
    import workbench.cluster.jobs as jobs
    import workbench.measure as measure

    monkeypatch.setattr(measure, "measure_variant",
                        lambda *a, **k: {"artifact": os.environ["WORKBENCH_ARTIFACTS"] + "/onnx/model.onnx"})
    monkeypatch.setattr(jobs, "_task", lambda spec: None)
    monkeypatch.setattr(jobs, "_variant", lambda spec, job: None)
    spec = parse_spec({**SPEC, "targets": [], "shared_path": str(tmp_path)})
    job = jobs.plan_jobs(spec, "text-classification", (jobs.LOCAL,))[0]
    for node in ("node-a", "node-b"):
        monkeypatch.setattr(jobs, "node_id", lambda node=node: node)
        row = jobs.run_job(spec, job)
        assert row["artifact"] == f"{tmp_path}/nodes/{node}/onnx/model.onnx"
