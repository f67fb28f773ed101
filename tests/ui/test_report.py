"""`workbench report STUDY`: one offline HTML file with the figures, the Pareto table, failures and the environment."""
import re

from workbench.cli import main
from workbench.results import ResultsTable
from workbench.ui.report import build_report


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


# ---- issue #12: provenance per row, metric names, lineage as changes, re-measured points ---------------------------

def _section(page: str, start: str) -> str:
    return page.split(start, 1)[1].split("<h3", 1)[0].split("<h2", 1)[0]


def test_report_shows_every_environment_with_the_rows_measured_in_it():
    from workbench.measure.environment import environment_id

    laptop, server = {"cpu": "Laptop CPU 1"}, {"cpu": "Server CPU 2"}
    base = {"step": None, "lineage": [], "device": "cpu", "precision": "fp32", "seq_len": 128, "batch_size": 1,
            "scenario": "latency", "metric": "accuracy", "higher_is_better": True, "quality": 0.8}
    ResultsTable.for_study("envs", environment=laptop).append(
        {**base, "variant": "laptop-run", "variant_id": "a1", "latency_p50_ms": 9.0})
    table = ResultsTable.for_study("envs", environment=server)
    table.append({**base, "variant": "server-run", "variant_id": "b2", "latency_p50_ms": 3.0})
    page = build_report("envs").read_text()
    laptop_id, server_id = environment_id(laptop), environment_id(server)
    environments = page.split("<h2>Environments</h2>")[1]
    on_laptop = _section(environments, f"<h3 id='env-{laptop_id}'>")
    on_server = _section(environments, f"<h3 id='env-{server_id}'>")
    # each machine is shown with its own rows: the first run is not attributed to the latest machine
    assert "Laptop CPU 1" in environments.split(f"id='env-{server_id}'")[0].split(f"id='env-{laptop_id}'")[1]
    assert "laptop-run" in on_laptop and "server-run" not in on_laptop
    assert "server-run" in on_server and "laptop-run" not in on_server
    all_rows = page.split("<h2>All rows</h2>")[1].split("<h2>")[0]
    assert "<th>environment</th>" in all_rows and laptop_id in all_rows and server_id in all_rows


def test_report_names_the_metric_shows_lineage_changes_and_costs_per_1m_requests():
    from workbench.core import config_to_dict
    from workbench.steps import ExportOnnxConfig, QuantizeDynamicConfig

    table = ResultsTable.for_study("named", environment={"cpu": "c"})
    lineage = [["export_onnx", config_to_dict(ExportOnnxConfig())],
               ["quantize_dynamic", config_to_dict(QuantizeDynamicConfig(per_channel=True))]]
    for vid, p50, q in (("v1", 2.0, 21.0), ("v2", 1.0, 25.0)):
        table.append({"variant": vid, "variant_id": vid, "scenario": "latency", "device": "cpu", "batch_size": 1,
                      "seq_len": 128, "metric": "perplexity", "higher_is_better": False, "quality": q,
                      "quality_ci_low": q - 1, "quality_ci_high": q + 1, "latency_p50_ms": p50, "lineage": lineage,
                      "usd_per_1k_requests": 0.00017, "usd_per_1m_requests": 0.17})
    page = build_report("named").read_text()
    pareto = page.split("<h2>Pareto front")[1].split("<h2>")[0]
    assert pareto.startswith(" (perplexity vs p50 latency)")
    heads = re.findall(r"<th>([^<]*)</th>", pareto)
    assert "perplexity" in heads and "perplexity 95% CI" in heads and "quality" not in heads
    assert "$ / 1M requests" in heads and "$ / 1k requests" not in heads
    assert "baseline → export_onnx → quantize_dynamic(per_channel=True)" in pareto
    assert "None" not in pareto


def test_report_shows_the_newest_row_of_a_point_measured_again():
    table = ResultsTable.for_study("again", environment={"cpu": "c"})
    row = {"variant": "torch-fp32", "variant_id": "v1", "scenario": "latency", "device": "cpu", "batch_size": 1,
           "seq_len": 128, "metric": "accuracy", "quality": 0.8}
    table.append({**row, "latency_p50_ms": 7.5})
    table.append({**row, "latency_p50_ms": 5.25})
    page = build_report("again").read_text()
    all_rows = page.split("<h2>All rows</h2>")[1].split("<h2>")[0]
    assert "5.25" in all_rows and "7.5" not in all_rows
    assert "1 older measurement of points measured again" in page


# ---- issue #15: latency under load ---------------------------------------------------------------------------------

def test_report_shows_the_load_curve_and_the_search_table():
    table = ResultsTable.for_study("loadrep", environment={"cpu": "Test CPU"})
    base = {"variant": "ort-fp32", "variant_id": "v1", "scenario": "load", "batch_size": 1, "slo_ms": 40.0,
            "serving_config": "b8 q0us x2 t1", "valid": True}
    for rate, p99, meets in ((10.0, 12.0, True), (20.0, 25.0, True), (40.0, 90.0, False)):
        table.append({**base, "offered_rate_per_s": rate, "latency_p50_ms": p99 / 3, "latency_p99_ms": p99,
                      "meets_slo": meets, "server_queue_ms": 1.0, "server_compute_ms": 3.0})
    table.append({**base, "scenario": "load-search", "stage": "fine", "goodput_per_s": 20.0, "knee_per_s": 20.0,
                  "p99_at_goodput_ms": 25.0, "usd_per_1k_requests_at_goodput": 0.00123})
    page = build_report("loadrep").read_text()
    section = page.split("<h2>Latency under load</h2>", 1)[1].split("<h2>", 1)[0]
    section = section.replace("\\u002f", "/")                              # plotly's JSON escapes '/'
    assert "Plotly.newPlot" in section and "goodput 20/s" in section      # goodput marked at 20/s
    assert "offered load (requests/s)" in section and "SLO 40 ms" in section
    search = section.split("<h3>Serving-config search</h3>", 1)[1]
    assert "b8 q0us x2 t1" in search and "p99 at goodput (ms)" in search and "0.00123" in search


# ---- issue #25: every scenario a notebook writes is drawn, with columns of its own ---------------------------------

STUDIES = __import__("pathlib").Path(__file__).parent / "studies"


def _notebook_study(tmp_path, name: str):
    """A study folder holding the rows notebook 07 / 08 wrote (tests/ui/studies)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "results.jsonl").write_text((STUDIES / f"{name}.jsonl").read_text())
    (folder / "environments.json").write_text((STUDIES / f"{name}.environments.json").read_text())
    return folder


def test_llm_serving_study_draws_ttft_tpot_token_rates_costs_and_perplexity(tmp_path):
    page = build_report(_notebook_study(tmp_path, "llm-serving")).read_text()
    assert "No figure" not in page and "<h2>Figures</h2>" not in page      # no empty quality-vs-latency section
    section = page.split("<h2>LLM serving arms</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("Plotly.newPlot") == 4
    for title in ("Time to first token vs time per output token", "Tokens per second",
                  "$ per 1M input / output tokens", "Perplexity change vs fp32"):
        assert f"<h3>{title}</h3>" in section
    table = section.split("<table>", 1)[1]
    assert "TTFT p50 (ms)" in table and "$ / 1M output tokens" in table and "$ / 1M input tokens" in table
    assert "items/s" not in page and "$ / 1M requests" not in page          # LLM rows are read per token
    assert "<td class='num'>157.5</td>" in table                            # fp32's TPOT from the saved row
    assert "-0.032 – 0.121" in table                                        # bf16's perplexity CI as saved
    assert "arm fp32, prompt 16 + 8 output tokens" in page                  # the environment's row list


def test_load_study_keeps_load_points_out_of_the_batching_figures_and_tables(tmp_path):
    page = build_report(_notebook_study(tmp_path, "load_and_tail")).read_text()
    batching = page.split("<h3>Latency and throughput vs batch size</h3>", 1)[1].split("<h", 1)[0]
    assert "task -" not in batching and "ort-fp32 (" not in batching       # one line: the sweep's variant only
    all_rows = page.split("<h2>All rows</h2>", 1)[1].split("<h2>", 1)[0]
    assert all_rows.count("<tr>") == 1 + 4                                  # the four batch sizes, no load point
    load = page.split("<h2>Latency under load</h2>", 1)[1].split("<h3>", 1)[0]
    table = load.split("<table>", 1)[1]
    assert table.count("<tr>") == 1 + 6 and "timeouts" in table and "offered (req/s)" in table
    assert "precision" not in table and "seq len" not in table              # columns follow the scenario
    assert "54.62 req/s offered, config b8 q0us x2 t1" in page


def test_speculative_study_draws_speedup_and_acceptance_with_its_own_table(tmp_path):
    page = build_report(_notebook_study(tmp_path, "speculative")).read_text()
    assert "No figure" not in page and "<h2>Figures</h2>" not in page
    section = page.split("<h2>Speculative decoding</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("Plotly.newPlot") == 3                     # speedup vs gamma + one histogram per drafter
    assert "<h3>Speedup vs gamma, temperature 0</h3>" in section
    assert "Accepted drafts per target call: prompt-lookup" in section
    table = section.split("<table>", 1)[1]
    assert table.count("<tr>") == 1 + 8 and "predicted speedup (x)" in table
    assert "<td class='num'>1.473</td>" in table                    # draft-model gamma=2's measured speedup as saved
