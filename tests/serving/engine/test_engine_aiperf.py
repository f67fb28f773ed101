"""AIPerf driver without running it: the export parsed into row columns, the workload file, the command line."""
from __future__ import annotations

import json

from workbench.serving.engine.aiperf import command, parse_profile, write_dataset


def test_parse_profile_columns(tmp_path):
    stat = lambda avg, p50, p99, n: {"unit": "ms", "avg": avg, "p50": p50, "p99": p99, "count": n}  # noqa: E731
    (tmp_path / "p.json").write_text(json.dumps({
        "time_to_first_token": stat(40.0, 37.5, 68.9, 12), "inter_token_latency": stat(11.4, 12.1, 15.0, 12),
        "request_latency": stat(216.1, 227.0, 264.7, 12), "goodput": {"unit": "requests/sec", "avg": 1.5},
        "request_throughput": {"unit": "requests/sec", "avg": 1.9},
        "output_token_throughput": {"unit": "tokens/sec", "avg": 32.2}}))
    cols = parse_profile(tmp_path / "p.json")
    assert cols["ttft_ms_p50"] == 37.5 and cols["ttft_ms_p99"] == 68.9 and cols["ttft_samples"] == 12
    assert cols["itl_ms_mean"] == 11.4 and cols["e2e_ms_p99"] == 264.7
    assert cols["goodput_per_s"] == 1.5 and cols["requests_per_s"] == 1.9 and cols["output_tokens_per_s"] == 32.2
    assert "errors" not in cols


def test_dataset_and_command_replay_one_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AIPERF", "/bin/true")
    path = write_dataset(tmp_path / "w.jsonl", ["a b", "c d"], [0.0, 0.25], 8)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["timestamp"] for x in lines] == [0.0, 250.0] and lines[1]["output_length"] == 8
    cmd = command("http://127.0.0.1:1", tmp_path, path, tmp_path / "out", 2, 500, 50)
    assert cmd[cmd.index("--input-file") + 1] == str(path) and "--fixed-schedule" in cmd
    assert cmd[cmd.index("--goodput") + 1] == "time_to_first_token:500 inter_token_latency:50"
    assert "ignore_eos:true" in cmd and cmd[cmd.index("--endpoint-type") + 1] == "completions"
    assert "--use-server-token-count" in cmd   # ITL over the tokens generated, not the answer text re-tokenised
    assert "--no-server-metrics" in cmd        # no scrape of the engine's core while it is measured
    assert "--no-gpu-telemetry" in cmd         # nor a telemetry service on the client's core
