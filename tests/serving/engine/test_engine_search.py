"""Engine config search without vLLM: a stand-in server whose goodput depends on its arguments, the climb, the
stages, the budget, a candidate that fails to start, the confirmation, and the winner written into the bundle."""
from __future__ import annotations

import json

import pytest

from workbench.serving.engine.engine_args import EngineArgs
from workbench.serving.engine.search import climb, engine_space
from workbench.serving.engine.workloads import WORKLOADS


def _row(rate, capacity):
    ok = rate <= capacity
    return {"offered_rate_per_s": rate, "slo_outcome": "pass" if ok else "miss", "meets_slo": ok,
            "slo_attainment": 1.0 if ok else 0.5}


def test_climb_doubles_then_steps_back_once():
    seen = []
    rows, good = climb(lambda r, k: seen.append(r) or _row(r, 1.5), 0.5, max_points=6)
    assert seen == [0.5, 1.0, 2.0, 1.41] and good == 1.41
    assert [r["offered_rate_per_s"] for r in rows] == [0.5, 1.0, 1.41, 2.0]


def test_climb_halves_a_missing_start_at_most_twice():
    seen = []
    _, good = climb(lambda r, k: seen.append(r) or _row(r, 0.01), 1.0, max_points=6)
    assert seen == [1.0, 0.5, 0.25] and good is None
    seen = []   # a confirmation may go further down (CONFIRM_HALVINGS): its start is a short climb's optimism
    _, good = climb(lambda r, k: seen.append(r) or _row(r, 0.1), 1.0, max_points=6, max_halvings=4)
    assert seen == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.0881] and good == 0.0881
    seen = []
    _, good = climb(lambda r, k: seen.append(r) or _row(r, 0.6), 1.0, max_points=6)
    assert seen == [1.0, 0.5, 0.705]
    assert good == 0.5   # 1.0 missed, 0.5 passed, then 0.705 (1.41 x 0.5, below the miss) missed: no second 1.0


def test_a_confirmation_point_reads_enough_requests_that_one_late_one_does_not_decide_it():
    from workbench.serving.engine.search import confirm_requests, point_requests

    assert [confirm_requests(a) for a in (0.99, 0.95, 0.999, 1.0)] == [100, 20, 1000, 8]
    assert point_requests(2.0, 5.0) == 10 and point_requests(2.0, 5.0, 100) == 100 and point_requests(30, 5.0) == 80
    assert point_requests(30, 5.0, 100) == 100
    # a slow engine's confirmation point stops at CONFIRM_POINT_MAX_S (180 s) of arrivals, not 100 requests
    assert point_requests(0.25, 8.0, 100) == 45 and point_requests(0.04, 8.0, 100) == 8


def test_space_small_and_full():
    base, chat, shared = EngineArgs(dtype="bfloat16"), WORKLOADS["chat"], WORKLOADS["shared-prefix"]
    native = {"dtype_here": "bfloat16", "fp8_kv": (True, "")}   # a CPU with AMX: no dtype stage, fp8 KV tried
    small = [stage for stage, _ in engine_space(base, chat, small=True, **native)]
    assert small == ["batching", "kv"]
    assert [s for s, _ in engine_space(base, shared, small=True, **native)] == ["batching", "kv", "prefix"]
    full = engine_space(base, chat, **native)
    assert [s for s, _ in full] == ["batching", "batching", "kv", "prefix"]
    assert full[1][1](base).max_num_seqs == 32 and full[3][1](base).enable_prefix_caching is False


def test_space_on_a_cpu_without_native_bf16_or_fp8_attention():
    """AVX2 only: fp32 compute is tried first (vLLM's bf16 is emulated there); fp8 KV is left out with the reason."""
    base, notes = EngineArgs(dtype="bfloat16"), []
    space = engine_space(base, WORKLOADS["chat"], small=True, dtype_here="float32",
                         fp8_kv=(False, "needs AVX-512 or AMX"), notes=notes)
    assert [s for s, _ in space] == ["dtype", "batching"] and space[0][1](base).dtype == "float32"
    assert notes == ["kv (fp8) not tried: needs AVX-512 or AMX"]


class FakeServer:
    """Stands in for VllmServer: its 'capacity' grows with max_num_seqs and int8; fp8 KV fails to start."""

    started = []

    def __init__(self, checkpoint, args, log_path, cpus=None, **kw):
        self.args, self.url, self.startup_s, self.log_path = args, "http://127.0.0.1:1", 1.0, log_path
        self.capacity = args.max_num_seqs / 8 * (1.5 if "int8" in str(checkpoint) else 1.0)
        FakeServer.started.append(args.label())

    def __enter__(self):
        if self.args.kv_cache_dtype == "fp8":
            from workbench.serving.engine.server import EngineError
            raise EngineError("vLLM exited during start-up (code 1). Log: fp8 KV not supported here")
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def fake_engine(monkeypatch):
    import workbench.serving.engine.load as load
    import workbench.serving.engine.search as search
    import workbench.serving.engine.server as server
    import workbench.serving.load.schedule as schedule

    FakeServer.started = []
    current = {}

    class Tracking(FakeServer):
        def __enter__(self):
            current["server"] = self
            return super().__enter__()

    def even_schedule(rate, n, arrival, seed=0):   # arrivals exactly 1 / rate apart: the point's rate reads back
        return [i / rate for i in range(n)]

    def fake_point(server_, ckpt, prompts, lens, offsets, new, ttft, itl, att, cpus, out, price=None, **kw):
        rate = round((len(offsets) - 1) / offsets[-1], 4)
        return {**_row(rate, current["server"].capacity), "n_requests": len(prompts)}

    monkeypatch.setattr(server, "VllmServer", Tracking)
    monkeypatch.setattr(schedule, "schedule", even_schedule)
    monkeypatch.setattr(load, "measure_point", fake_point)
    monkeypatch.setattr(search, "idle_latency",
                        lambda *a, **k: {"ttft_ms_p50": 10.0, "itl_ms_p50": 2.0, "e2e_s_p50": 1.0})
    # a CPU with native bf16 and fp8 attention, whatever this one is (the AVX2 space has its own test)
    monkeypatch.setattr(search, "engine_dtype_here", lambda: "bfloat16")
    monkeypatch.setattr(search, "fp8_kv_here", lambda: (True, ""))
    return FakeServer


def _bundles(tiny_llama_task, tmp_path):
    from workbench.core import apply
    from workbench.serving.engine.export import export_engine
    from workbench.steps.weight_only import WeightOnlyConfig

    base = tiny_llama_task.baseline()
    return {"bf16": export_engine(base, tiny_llama_task, to=tmp_path / "bf16"),
            "int8": export_engine(apply(base, WeightOnlyConfig.int8()), tiny_llama_task, to=tmp_path / "int8")}


def test_search_stages_confirm_and_write(tiny_llama_task, tmp_path, fake_engine, monkeypatch):
    import workbench.serving.engine.workloads as workloads
    from workbench.results import ResultsTable
    from workbench.serving.bundle.verify import check_files, load_manifest
    from workbench.serving.engine.search import search_engine, write_search

    monkeypatch.setattr(workloads.Workload, "prompts", lambda self, ckpt, n, seed=0: (["x"] * n, [8] * n))
    bundles = _bundles(tiny_llama_task, tmp_path)
    table = ResultsTable(tmp_path / "s" / "results.jsonl")
    confirmed_on = []
    result = search_engine(bundles, workload="chat", small=True, use_aiperf=False, table=table, max_points=6,
                           point_s=20.0, on_confirm=lambda server, cand, res: confirmed_on.append(server.args))
    stages = [(c.stage, c.label) for c in result.candidates]
    assert [s for s, _ in stages] == ["default", "precision", "batching", "kv"]
    # derived SLO from the idle latency: 5x TTFT p50, 4x ITL p50
    assert (result.slo_ttft_ms, result.slo_itl_ms) == (50.0, 8.0)
    default, int8, wide, kv = result.candidates
    assert default.args.dtype == "bfloat16"   # vLLM's own dtype for the bf16 checkpoint, whatever the export wrote
    assert default.goodput_per_s == 1.0 and int8.goodput_per_s == 1.41   # capacities 1.0 and 1.5
    assert wide.precision == "int8" and wide.args.max_num_seqs == 16 and wide.goodput_per_s == 2.82
    assert kv.goodput_per_s is None and "fp8 KV not supported" in kv.error
    assert result.winner is wide and result.confirmed.args == wide.args and confirmed_on == [wide.args]
    # the default climbed again the same way, on its own fresh server: the ratio is confirmation over confirmation
    again = result.default_confirmed
    assert again is not default and again.stage == "confirm-default" and again.args == default.args
    assert again.start_rate == default.goodput_per_s / 2
    assert result.confirmed.halvings == again.halvings == 4 and default.halvings == 2
    assert result.headline_ratio == round(result.confirmed.goodput_per_s / again.goodput_per_s, 3)
    # each climb's first rate is kept (a prediction climbs the same ladder): idle 1 / e2e, the confirmation half the
    # winner's goodput; and the climb's settings
    assert default.start_rate == max(0.05, round(1.0 / result.idle["e2e_s_p50"], 3))
    assert result.confirmed.start_rate == wide.goodput_per_s / 2
    assert (result.attainment, result.point_s, result.max_points) == (0.99, 20.0, 6)
    # a confirmation point reads >= 100 requests (one late request of 100 still meets 99%); a search point 8..80
    # (at rates below 100 / 180 s, 180 s of arrivals, and the row says how many the confirmation wanted)
    confirm_rows = result.confirmed.rows + again.rows
    assert all(r["n_requests"] >= 100 or (r["confirm_requests_wanted"] == 100 and
                                         r["n_requests"] == round(r["offered_rate_per_s"] * 180)) for r in confirm_rows)
    assert any(r["n_requests"] >= 100 for r in confirm_rows)
    assert all(8 <= r["n_requests"] <= 80 for c in result.candidates for r in c.rows)
    summaries = [r for r in table.rows if r["scenario"] == "load-engine-search"]
    assert [r["stage"] for r in summaries] == ["default", "precision", "batching", "kv", "confirm", "confirm-default"]
    assert summaries[0]["start_rate_per_s"] == default.start_rate
    assert all(r["search_stage"] for r in table.rows if r["scenario"] == "load-engine")
    with pytest.raises(ValueError, match="the winner is int8"):
        write_search(bundles["bf16"], result)
    write_search(bundles["int8"], result)
    manifest = load_manifest(bundles["int8"])
    assert EngineArgs.from_dict(json.loads((bundles["int8"] / "engine_args.json").read_text())) == wide.args
    name = manifest["name"]
    assert json.loads((bundles["int8"] / "triton" / name / "1" / "model.json").read_text())["max_num_seqs"] == 16
    assert manifest["engine_search"]["goodput_over_default"] == result.headline_ratio
    assert "--max-num-seqs 16" in (bundles["int8"] / "MODEL_CARD.md").read_text()
    assert check_files(bundles["int8"], manifest) == []   # every file's hash, the new card's included


def test_budget_skips_later_stages_but_confirms(tiny_llama_task, tmp_path, fake_engine, monkeypatch):
    import workbench.serving.engine.workloads as workloads
    from workbench.serving.engine.search import search_engine

    monkeypatch.setattr(workloads.Workload, "prompts", lambda self, ckpt, n, seed=0: (["x"] * n, [8] * n))
    bundle = _bundles(tiny_llama_task, tmp_path)["bf16"]
    result = search_engine(bundle, 100.0, 10.0, budget_s=1e-9, small=True, use_aiperf=False, point_s=20.0)
    assert [c.stage for c in result.candidates] == ["default"] and result.confirmed.stage == "confirm"
    assert result.default_confirmed is result.confirmed and result.headline_ratio == 1.0   # the default won
    assert any("batching" in s for s in result.skipped) and (result.slo_ttft_ms, result.slo_itl_ms) == (100.0, 10.0)
    assert "not tried (time budget)" in result.to_text()


def test_bad_input_is_refused(tmp_path):
    from workbench.serving.engine.search import search_engine

    with pytest.raises(ValueError, match="give both"):
        search_engine(tmp_path, 100.0, None)
    with pytest.raises(ValueError, match="no engine bundle"):
        search_engine({})


def test_cli_search_on_engine_bundle_refuses_rates_and_mixed_workload(tiny_llama_task, tmp_path, capsys):
    from workbench.cli import main
    from workbench.serving.engine.export import export_engine

    bundle = export_engine(tiny_llama_task.baseline(), tiny_llama_task, to=tmp_path / "b")
    assert main(["load", str(bundle), "--slo-ms", "100", "--search", "--rates", "1,2"]) == 2
    assert "--rates with --search on an engine bundle" in capsys.readouterr().err
    assert main(["load", str(bundle), "--slo-ms", "100", "--workload", "long-answer", "--prompt-tokens", "64"]) == 2
    assert "--workload names" in capsys.readouterr().err


def test_cli_search_writes_the_confirmed_winner(tiny_llama_task, tmp_path, fake_engine, monkeypatch, capsys):
    import workbench.serving.engine.workloads as workloads
    from workbench.cli import main
    from workbench.serving.bundle.verify import load_manifest
    from workbench.serving.engine.export import export_engine

    monkeypatch.setattr(workloads.Workload, "prompts", lambda self, ckpt, n, seed=0: (["x"] * n, [8] * n))
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    bundle = export_engine(tiny_llama_task.baseline(), tiny_llama_task, to=tmp_path / "b")
    # 100 ms TTFT; the search sends rate x 8 s requests, so the stand-in's rates read as n / 20 (0.4x): the climb's
    # figures are the stand-in's, what is checked is the wiring: stages, confirmation, what is written
    assert main(["load", str(bundle), "--slo-ms", "100", "--search", "--small-search", "--write-config",
                 "--study", "s"]) == 0
    out = capsys.readouterr().out
    assert "confirmed bf16-seqs16" in out and "wrote bf16-seqs16" in out
    manifest = load_manifest(bundle)
    assert manifest["engine_args"]["max_num_seqs"] == 16 and manifest["engine_search"]["confirmed"]
    assert manifest["load"]["slo_ttft_ms"] == 100.0 and manifest["load"]["slo_itl_ms"] == 4 * 100.0 / 32


def test_no_climb_goes_below_the_slowest_rate():
    """A point below SLOWEST_RATE (8 requests in 180 s) would take many minutes: the climb stops halving there."""
    from workbench.serving.engine.search import SLOWEST_RATE

    seen = []
    _, good = climb(lambda r, k: seen.append(r) or _row(r, 0.001), 0.1, max_points=6, max_halvings=4)
    assert seen == [0.1, 0.05] and good is None and 0.025 < SLOWEST_RATE < 0.05


def test_a_default_that_meets_the_slo_at_no_rate_gives_a_lower_bound():
    from pathlib import Path

    from workbench.serving.engine.search import EngineCandidate, EngineSearchResult

    def cand(stage, goodput, outcomes):
        rows = [{"offered_rate_per_s": r, "slo_outcome": o} for r, o in outcomes]
        return EngineCandidate("bf16", Path("b"), EngineArgs(), stage, goodput_per_s=goodput, rows=rows)

    win = cand("confirm", 0.37, [(0.37, "pass"), (0.52, "miss")])
    result = EngineSearchResult(1000.0, 200.0, WORKLOADS["chat"], [], confirmed=win,
                                default_confirmed=cand("confirm-default", None, [(0.092, "miss"), (0.046, "miss")]))
    assert result.headline_ratio is None and result.headline_ratio_at_least == round(0.37 / 0.046, 3)
    assert result.as_dict()["goodput_over_default_at_least"] == result.headline_ratio_at_least
    assert "at least 8.043" in result.to_text()
    result.default_confirmed = cand("confirm-default", 0.05, [(0.05, "pass"), (0.1, "miss")])
    assert result.headline_ratio == 7.4 and result.headline_ratio_at_least is None


def test_idle_latency_sends_a_burst_of_fresh_prompts_and_reads_its_inter_token_gaps(monkeypatch):
    import os
    from pathlib import Path
    from types import SimpleNamespace

    import workbench.serving.engine.openai_client as client
    from workbench.serving.engine.openai_client import OwnClientResult
    from workbench.serving.engine.search import idle_latency
    from workbench.serving.engine.workloads import Workload

    sent = []

    def fake_schedule(url, prompts, offsets, max_tokens, **kw):   # a step of 4 ms alone, 9 ms with 3 running
        sent.append((list(prompts), list(offsets)))
        itl = 9.0 if len(prompts) == 3 else 4.0
        return OwnClientResult({"itl_ms_p50": itl}, len(prompts), len(prompts), 0, 0.0, 0.0, 0.5,
                               per_request=[(20.0, itl)] * len(prompts))

    monkeypatch.setattr(client, "run_schedule", fake_schedule)
    monkeypatch.setattr(Workload, "prompts", lambda self, ckpt, n, seed=0: ([f"p{i}" for i in range(n)], [8] * n))
    server, cpus = SimpleNamespace(url="http://127.0.0.1:1", log_path="vllm.log"), os.sched_getaffinity(0)
    idle = idle_latency(server, Path("ckpt"), Workload("t", 8, 4), cpus, burst=3)
    assert idle == {"ttft_ms_p50": 20.0, "itl_ms_p50": 4.0, "e2e_s_p50": 0.5, "burst_size": 3, "burst_itl_ms_p50": 9.0}
    assert sent[-1] == (["p6", "p7", "p8"], [0.0] * 3)   # prompts the idle requests did not send, all at once
    sent.clear()
    assert "burst_size" not in idle_latency(server, Path("ckpt"), Workload("t", 8, 4), cpus)
    assert len(sent) == 5   # two warm-ups in one schedule, four idle requests, no burst
