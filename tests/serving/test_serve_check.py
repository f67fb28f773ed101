"""Serve the demo classifier's bundle on a real Triton server on loopback (nvidia-pytriton's tritonserver)."""
import psutil
import pytest
from demo_bundle import copy_bundle, demo_setup

from workbench.serving.bundle.triton_server import TritonServer, triton_distribution, twin_repository
from workbench.serving.bundle.serve_check import ServeCheckError, serve_check
from workbench.serving.bundle.verify import BundleError, load_manifest

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)


def _triton_children():
    return [p for p in psutil.Process().children(recursive=True)
            if "triton" in " ".join(p.cmdline() if p.is_running() else [])]


@pytest.mark.integration
def test_serve_check_answers_match_and_triton_batches():
    bundle = demo_setup()[3]
    manifest = load_manifest(bundle)
    report = serve_check(bundle, n_requests=32, concurrency=8)
    assert report.ok and report.n_correct == 32 and report.max_abs_diff <= 1e-4
    assert sum(size * count for size, count in report.batch_sizes.items()) == 32  # every request ran exactly once
    assert max(report.batch_sizes) <= manifest["batching"]["max_batch_size"]
    assert 0 < report.latency_ms["p50"] <= report.latency_ms["p99"] and report.server_version
    assert all(1024 <= port <= 65535 for port in report.ports.values())
    assert not _triton_children()  # the server (and its backend stubs) stopped


@pytest.mark.integration
def test_server_is_stopped_when_the_check_fails(tmp_path):
    bundle = demo_setup()[3]
    dist = triton_distribution()
    backends, repo = twin_repository(bundle, load_manifest(bundle), tmp_path / "work", dist)
    server = TritonServer(repo, backends, dist, tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="in the middle"):
        with server:
            assert server.process.poll() is None
            raise RuntimeError("something failed in the middle of the check")
    assert server.process.poll() is not None and not _triton_children()


def test_tampered_bundle_is_not_served(tmp_path):
    bundle = copy_bundle(tmp_path / "b")
    (bundle / "reference" / "inputs.npz").write_bytes(b"x")
    with pytest.raises(BundleError, match="refusing to serve.*hash mismatch"):
        serve_check(bundle)


def test_bounded_burst_only():
    with pytest.raises(ValueError, match="n_requests"):
        serve_check(demo_setup()[3], n_requests=10**6)
    assert issubclass(ServeCheckError, RuntimeError)


def test_twin_repository_carries_external_data_under_any_name(tmp_path):
    import numpy as np
    from external_data_bundle import DATA_NAME, external_data_setup

    from workbench.runtime.ort import OrtRunner
    from workbench.serving.bundle.verify import reference_arrays

    _, _, bundle, _ = external_data_setup()
    manifest = load_manifest(bundle)
    _, repo = twin_repository(bundle, manifest, tmp_path / "work", triton_distribution())
    version = repo / manifest["name"] / "1"
    assert (version / DATA_NAME).resolve() == (bundle / "model_repository" / manifest["name"] / "1" / DATA_NAME)
    inputs, outputs = reference_arrays(bundle)
    got = OrtRunner(version / "model.onnx", threads=1).run(inputs)  # what the twin loads inside Triton
    assert np.allclose(got["logits"], outputs["logits"], atol=1e-5)


@pytest.mark.integration
def test_serve_check_serves_a_model_with_external_data():
    from external_data_bundle import external_data_setup

    report = serve_check(external_data_setup()[2], n_requests=8, concurrency=4)
    assert report.ok and report.n_correct == 8
