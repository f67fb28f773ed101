import json
import os
import subprocess
import sys

import pytest

from workbench.cli.recommend import pick


@pytest.mark.integration  # `workbench recommend` times every CPU arm: a benchmark (~40 s of CPU)
def test_recommend_prints_one_line_per_arm_and_a_recommendation(tmp_path):
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "recommend", "--task", "text-classification",
                             "--time-budget", "0.5", "--eval-limit", "32", "--skip", "compile", "--study", "rec"],
                            capture_output=True, text=True,
                            env={**os.environ, "WORKBENCH_SMALL": "1", "WORKBENCH_ARTIFACTS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    report = json.loads((tmp_path / "rec" / "recommend.json").read_text())
    arms = {a["arm"]: a for a in report["arms"]}
    assert list(arms) == ["torch-fp32", "torch-int8-dynamic", "ort-int8-dynamic", "torch-bf16",
                          "torch-compile-fp32", "torch-compile-bf16", "torch-int8-pt2e-dynamic",
                          "torch-int8-pt2e-static", "ov-fp32", "ov-bf16", "ov-int8-weights", "ov-int8-static"]
    for name, arm in arms.items():
        assert f"  {name}" in out
    assert arms["torch-fp32"]["status"] == "measured" and arms["torch-fp32"]["speedup"] == 1.0
    assert arms["torch-compile-fp32"]["status"] == "skipped" and "--skip compile" in arms["torch-compile-fp32"]["reason"]
    assert report["eval_n"] == 32 and report["batch_size"] == 4
    assert report["calibration"].endswith(".npz") and arms["torch-int8-pt2e-static"]["status"] == "skipped"
    assert arms["ov-int8-static"]["status"] == "measured", arms["ov-int8-static"]   # calibrated on the task's split
    bf16_native = report["isa"]["amx_bf16"] or report["isa"]["avx512_bf16"]
    assert (arms["ov-bf16"]["status"] == "measured") == bf16_native
    if not bf16_native:
        assert "emulated" in arms["ov-bf16"]["reason"]
    for arm in arms.values():
        if arm["status"] == "measured" and arm["kind"] != "baseline":
            assert arm["p50_ms"] > 0 and len(arm["drop_ci_pts"]) == 2
            assert arm["drop_ci_pts"][0] <= arm["drop_pts"] <= arm["drop_ci_pts"][1]
    assert f"recommendation: {report['recommendation']}" in out
    assert f"wrote {tmp_path / 'rec' / 'recommend.json'}" in out


def test_pick_is_the_fastest_arm_whose_drop_ci_is_within_tolerance():
    rows = [{"arm": "fp32", "baseline": True, "p50_ms": 10.0},
            {"arm": "fast-lossy", "p50_ms": 3.0, "drop_ci_pts": [0.5, 4.0]},
            {"arm": "ok", "p50_ms": 5.0, "drop_ci_pts": [-0.5, 0.8]},
            {"arm": "skipped", "p50_ms": None}]
    assert pick(rows, 1.0)["arm"] == "ok"
    assert pick(rows, 5.0)["arm"] == "fast-lossy"
    assert pick(rows[:1] + rows[1:2], 1.0)["arm"] == "fp32"
