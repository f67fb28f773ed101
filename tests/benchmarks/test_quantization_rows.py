"""benchmarks/quantization.py writes full harness rows (every percentile with its call count, throughput, threads)
from interleaved timing, and picks its best arm by a paired CI."""

import numpy as np
import pytest



@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("quantization")


def _arms():
    return {"fast": lambda inputs: sum(range(2000)), "slow": lambda inputs: sum(range(20000))}


def test_rows_carry_every_percentile_with_its_call_count_and_throughput(bench):
    from workbench.measure.timing import MIN_SAMPLES, per_second

    rounds = -(-MIN_SAMPLES["p99"] // bench.CALLS_PER_TURN)          # enough calls for a p99
    timing, first = bench.time_arms(_arms(), {}, rounds=rounds, seconds=None, threads=None)
    for name, t in timing.items():
        row = bench.harness_columns(t, items=8, tokens=320, threads=2, first_ms=first[name])
        samples = np.asarray(t.samples_ms)
        assert row["n_calls"] == len(samples) == rounds * bench.CALLS_PER_TURN
        for p, rank in (("p50", 50), ("p90", 90), ("p99", 99)):
            assert row[f"latency_{p}_ms"] == pytest.approx(np.percentile(samples, rank), abs=1e-4)
        assert t.p99_ms == pytest.approx(np.percentile(samples, 99))
        median = float(np.percentile(samples, 50))
        assert row["throughput_per_s"] == pytest.approx(per_second(8, median), rel=1e-3)
        assert row["tokens_per_s"] == pytest.approx(per_second(320, median), rel=1e-3)
        assert row["threads"] == 2 and row["latency_first_call_ms"] == pytest.approx(first[name], abs=1e-4)
        assert row["n_windows"] == rounds and row["timing"] == "interleaved"


def test_too_few_calls_leave_the_tail_percentile_empty_and_say_why(bench):
    timing, first = bench.time_arms(_arms(), {}, rounds=5, seconds=None, threads=None)
    row = bench.harness_columns(timing["fast"], items=1, tokens=None, threads=1, first_ms=first["fast"])
    assert row["n_calls"] == 15 and row["latency_p50_ms"] is not None and row["throughput_per_s"] > 0
    assert row["latency_p99_ms"] is None and "n=15" in row["latency_p99_note"] and timing["fast"].p99_ms is None
    assert "tokens_per_s" not in row


def test_best_arm_eligibility_reads_the_paired_interval(bench):
    assert bench.eligible(0.0, 0.0, 0.0)                       # the parent itself
    assert bench.eligible(3.0, -1.0, 7.0)                      # inside the noise: no measurable loss
    assert bench.eligible(0.6, 0.2, 1.1)                       # measurable but within the 1-point tolerance
    assert not bench.eligible(3.0, 1.0, 5.0)                   # measurably worse than the tolerance
    assert bench.eligible(-2.0, -3.0, -1.0)                    # measurably better


def test_isa_arms_that_cannot_run_are_rows_with_the_reason_and_a_failure_does_not_stop_the_others(
        bench, monkeypatch, step_registry, tmp_path):
    import dataclasses

    import torch

    from workbench.core import Variant
    from workbench.measure import isa

    @dataclasses.dataclass(frozen=True)
    class OnOnnx:          # like OpenVinoConfig: has out_dir, so it starts from the ONNX export
        out_dir: str | None = None

    @dataclasses.dataclass(frozen=True)
    class Broken:
        pass

    def broken(variant, config):
        raise RuntimeError("no such kernel")

    step_registry("test_on_onnx", OnOnnx, lambda v, c: dataclasses.replace(v, name=f"{v.name}+ov:{c.out_dir}"))
    step_registry("test_broken", Broken, broken)
    arms = [isa.Arm("ov-fp32", (OnOnnx(),), True, "r"), isa.Arm("torch-int8-pt2e-dynamic", (Broken(),), True, "r"),
            isa.Arm("ov-bf16", (), False, "no AMX/AVX512-BF16: bf16 would run emulated"),
            isa.Arm("torch-bf16", (), False, "not one of the benchmark's ISA arms")]
    monkeypatch.setattr(isa, "applicable_arms", lambda calibration=None: arms)
    make = lambda name: Variant(name=name, task="t", backend="torch", device="cpu", precision="fp32",  # noqa: E731
                                runner=lambda x: x)
    built, skipped = bench.build_isa_arms(make("torch"), make("onnx"), [{"input_ids": torch.ones(2, 3)}],
                                          str(tmp_path), lambda msg: None)
    assert list(built) == ["ov-fp32"] and built["ov-fp32"].name == f"onnx+ov:{tmp_path}"
    assert skipped == {"torch-int8-pt2e-dynamic": "failed here: RuntimeError: no such kernel",
                       "ov-bf16": "no AMX/AVX512-BF16: bf16 would run emulated"}
