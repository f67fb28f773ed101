"""The Triton Python full-sequence path the engine replaces, measured near idle and judged by an engine SLO."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)


@pytest.mark.integration
def test_near_idle_requests_judged_by_ttft_and_per_request_itl(tmp_path):
    from workbench.serving.engine.versus_triton import triton_python_near_idle
    from workbench.serving.engine.workloads import Workload
    from workbench.tasks import get_task

    task, wl = get_task("causal-lm"), Workload("tiny", 12, 4)
    stale = tmp_path / "bundle-lm"   # an earlier run's bundle: a benchmark re-run replaces it (overwrite=True)
    stale.mkdir()
    (stale / "left-over").write_text("earlier run")
    out = triton_python_near_idle(task, tmp_path, wl, slo_ttft_ms=60_000, slo_itl_ms=1e-3, n_requests=2,
                                  overwrite=True)
    assert out["bundle"] == str(stale) and not (stale / "left-over").exists() and (stale / "manifest.json").exists()
    # a 1 us ITL limit: every streamed request misses it near idle, so no rate meets the SLO
    assert out["n_measured"] == 2 and out["errors"] == 0 and out["prompt_tokens"] == 12 and out["new_tokens"] == 4
    assert out["tpot_ms_p50"] > 0 and out["ttft_ms_p50"] > 0 and out["capacity_per_s"] > 0
    assert out["offered_rate_per_s"] == pytest.approx(out["capacity_per_s"] / 2, rel=0.01)
    assert out["within_slo_share"] == 0.0 and out["goodput_per_s"] == 0.0
    with pytest.raises(ValueError, match="engine search's"):
        triton_python_near_idle(task, tmp_path, wl, slo_ttft_ms=0, slo_itl_ms=10)
