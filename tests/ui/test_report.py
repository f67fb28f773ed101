"""`workbench report STUDY`: one offline HTML file with the figures, the Pareto table, failures and the environment."""
import re

from workbench.cli import main
from workbench.results import ResultsTable


def _study(name="rep"):
    table = ResultsTable.for_study(name, environment={"cpu": "Test CPU 9000", "cpu_isa": ["avx2"], "git_revision": "abc"})
    base = {"variant_id": "b0", "step": None, "lineage": [], "device": "cpu", "precision": "fp32", "seq_len": 128,
            "metric": "accuracy", "higher_is_better": True}
    table.append({**base, "variant": "torch-fp32", "batch_size": 1, "latency_p50_ms": 9.0, "quality": 0.81,
                  "quality_ci_low": 0.78, "quality_ci_high": 0.84, "throughput_per_s": 111.0})
    table.append({**base, "variant": "torch-fp32", "batch_size": 8, "latency_p50_ms": 40.0, "throughput_per_s": 200.0})
    table.append({**base, "variant": "ort-int8", "variant_id": "q1", "step": "quantize_dynamic", "precision": "int8",
                  "lineage": [["export_onnx", {"opset": 17}], ["quantize_dynamic", {"per_channel": True}]],
                  "batch_size": 1, "latency_p50_ms": 3.0, "quality": 0.80, "quality_ci_low": 0.77,
                  "quality_ci_high": 0.83, "throughput_per_s": 333.0})
    table.append({"variant": "quantize_static", "device": "cpu", "failed": True, "error": "ValueError: bad calibration"})
    return table


def test_report_is_self_contained_with_figures_table_environment(tmp_path, capsys):
    table = _study()
    assert main(["report", "rep"]) == 0
    out = capsys.readouterr().out
    path = table.path.parent / "report.html"
    assert f"wrote {path}" in out and re.search(r"sha256 [0-9a-f]{64}", out)
    page = path.read_text()
    assert not re.search(r"<script[^>]+src=", page)                     # nothing fetched: works offline
    assert len(page) > 3_000_000 and "Plotly.newPlot" in page             # plotly.js embedded, figures drawn
    assert page.count("Plotly.newPlot") == 2                              # Pareto + batching (two batch sizes)
    pareto = page.split("<h2>Pareto front")[1].split("<h2>")[0]
    assert "ort-int8" in pareto and "torch-fp32" in pareto and "export_onnx(opset=17)" in pareto
    assert "Test CPU 9000" in page and "bad calibration" in page
    assert not list(path.parent.glob(".report-*"))                        # temp file renamed into place


def test_report_bad_study_is_a_clear_error(capsys):
    assert main(["report", "no-such-study"]) == 2
    err = capsys.readouterr().err
    assert "no results at" in err and "no-such-study" in err
