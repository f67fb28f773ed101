import json
import os
import subprocess
import sys

from workbench.arms.cpu import cpu_arms


def test_recommend_prints_one_line_per_arm_and_a_recommendation(tmp_path):
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "recommend", "--task", "text-classification",
                             "--time-budget", "0.5", "--eval-limit", "32", "--skip", "compile", "--study", "rec"],
                            capture_output=True, text=True,
                            env={**os.environ, "WORKBENCH_SMALL": "1", "WORKBENCH_ARTIFACTS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    report = json.loads((tmp_path / "rec" / "recommend.json").read_text())
    arms = {a["arm"]: a for a in report["arms"]}
    assert list(arms) == [a.name for a in cpu_arms()]
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
        assert arms["ov-bf16"]["status"] == "not available here" and "emulated" in arms["ov-bf16"]["reason"]
    for arm in arms.values():
        if arm["status"] == "measured" and arm["kind"] != "baseline":
            assert arm["p50_ms"] > 0 and len(arm["drop_ci_pts"]) == 2
            assert arm["drop_ci_pts"][0] <= arm["drop_pts"] <= arm["drop_ci_pts"][1]
            assert arm["eligible"] == (arm["drop_ci_pts"][1] <= 1.0)          # the one rule
    best = arms[report["recommendation"]]
    assert best["eligible"] and f"recommendation: {report['recommendation']}" in out
    if best["baseline"]:
        assert report["confirmed_speedup"] == 1.0
    else:   # confirmed on a fresh run of the winner against fp32 alone: its own figure, beside the selection's
        assert report["selection_speedup"] == best["speedup"] and report["confirmed_speedup"] > 0
        assert f"{report['confirmed_speedup']:.2f}x vs torch-fp32 confirmed" in out
    assert f"wrote {tmp_path / 'rec' / 'recommend.json'}" in out
