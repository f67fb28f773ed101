"""The ISA panel: this CPU's flags, every arm with applies / not and why, measured rows, and a winner with reasons."""
import pytest

pytest.importorskip("openvino")

from workbench.tasks import get_task  # noqa: E402
from workbench.ui.isa_panel import IsaPanel  # noqa: E402


@pytest.mark.slow  # integration-like: builds and times every CPU arm (export, OpenVINO, quantisation)
def test_panel_lists_every_arm_measures_those_that_apply_and_names_a_winner():
    panel = IsaPanel(get_task("text-classification"), calib_examples=16, skip=("compile", "int8", "bf16"),
                     batch_size=2, seq_len=32, eval_limit=32, seconds=0.3)
    before = panel.to_html()
    assert panel.cpu in before and "run() to measure" in before and panel.calibration.suffix == ".npz"
    rows = {r["arm"]: r for r in panel.run()}
    assert list(rows) == [a.name for a in panel.arms]
    native_bf16 = panel.isa["amx_bf16"] or panel.isa["avx512_bf16"]
    if not native_bf16:
        assert rows["ov-bf16"]["status"] == "not available here" and "emulated" in rows["ov-bf16"]["reason"]
    assert rows["torch-compile-fp32"]["status"] == "skipped" and "skipped in this run" in rows["torch-compile-fp32"]["reason"]
    measured = {n: r for n, r in rows.items() if r["status"] == "measured"}
    assert {"torch-fp32", "ov-fp32", "ov-int8-static"} <= set(measured)
    assert measured["torch-fp32"]["speedup"] == 1.0
    for name, r in measured.items():
        assert r["p50_ms"] > 0
        if name != "torch-fp32":
            assert r["drop_ci_pts"][0] <= r["drop_pts"] <= r["drop_ci_pts"][1]
    assert panel.best["arm"] in measured and panel.best["arm"] in panel.why and panel.best["eligible"]
    if not panel.best["baseline"]:      # the headline is the fresh confirmation run, named as such
        assert panel.confirmed_speedup > 0 and "confirmed" in panel.why
    html = panel.to_html()
    assert "won:" in html and "ov-int8-static" in html and "not available here" in html or native_bf16
    assert panel.to_text().count("\n") >= len(rows)
