"""The load benchmark's bundles: the demo classifier in fp32 and int8 with one SLO read off the fp32 bundle's own
batch-1 p50 (measured, never assumed), each a complete bundle; the demo causal LM's bundle never silently replaces one."""
import json

import pytest

from workbench.serving.load.demo_bundles import classifier_bundles

pytestmark = pytest.mark.slow   # two ONNX exports, an int8 quantisation and two batching sweeps


def test_classifier_bundles_share_an_slo_measured_on_the_fp32_bundle(tmp_path):
    from workbench.serving.bundle.verify import verify_bundle

    lines = []
    bundles, slo = classifier_bundles(tmp_path, threads=1, int8=True, point_seconds=0.2, log=lines.append)
    assert set(bundles) == {"fp32", "int8"} and len(lines) == 2
    rows = [json.loads(line) for line in (bundles["fp32"] / "results.jsonl").read_text().splitlines()]
    batch1 = [r["latency_p50_ms"] for r in rows if r.get("batch_size") == 1]
    assert batch1 and slo == round(10 * batch1[0], 1) > 0
    for name, bundle in bundles.items():
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["name"] == f"clf-{name}" and manifest["batching"]["slo_ms"] == slo
        verify_bundle(bundle)


def test_causal_lm_bundle_refuses_an_existing_bundle_before_any_work(tmp_path, monkeypatch):
    """A re-run into the same folder is told at once how to proceed, not after the ONNX export and sweep."""
    import workbench.core
    from workbench.serving.bundle.export import ExportError
    from workbench.serving.load.demo_bundles import causal_lm_bundle

    (tmp_path / "bundle-lm").mkdir()
    monkeypatch.setattr(workbench.core, "apply", lambda *a, **k: pytest.fail("exported before refusing"))
    with pytest.raises(ExportError, match="bundle-lm already exists: choose another folder or pass overwrite=True"):
        causal_lm_bundle(tmp_path)
