"""The hand-off on a real Triton server: optimize bundles its pick (or the cheapest arm the ONNX bundle can carry) and
offers it one open-loop point. Starts Triton: integration."""
import json

import pytest

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)


@pytest.mark.integration
@pytest.mark.slow
def test_bundle_and_load_check(small):
    from workbench.optimize import handoff, optimize

    if handoff.triton_missing():
        pytest.skip(handoff.triton_missing())
    tmp_path = small
    result = optimize("text-classification", slo_ms=2000.0, percentile="p50", max_drop=100.0, budget_s=900,
                      study="opt", progress=False)
    pick = result.decision["pick"]
    assert result.bundle is not None and (result.bundle / "manifest.json").is_file()
    assert pick["bundle"] == str(result.bundle)
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["served"]["backend"] == "onnxruntime"
    check = pick["load_check"]
    assert check["rate_per_s"] > 0 and check["errors"] == 0 and check["tail_ms"] > 0
    rows = [json.loads(x) for x in (tmp_path / "opt" / "results.jsonl").read_text().splitlines()]
    assert sum(r["scenario"] == "optimize-load" for r in rows) == 1
