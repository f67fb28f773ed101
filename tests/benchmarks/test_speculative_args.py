"""benchmarks/speculative.py's arguments: gamma is chosen by timing unless a number is given."""
import pytest


def test_gamma_is_auto_by_default_a_number_when_given_and_refused_otherwise(benchmark_module, capsys):
    bench = benchmark_module("speculative")
    assert bench.parse_args([]).gamma == "auto" and bench.parse_args([]).gamma_candidates == (2, 3, 4, 5, 6)
    args = bench.parse_args(["--gamma", "3", "--gamma-candidates", "3,5"])
    assert args.gamma == 3 and args.gamma_candidates == (3, 5)
    for bad in ("0", "four"):
        with pytest.raises(SystemExit):
            bench.parse_args(["--gamma", bad])
        assert "drafts per round >= 1, or auto" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--gamma-candidates", "2,x"])
    assert "comma-separated" in capsys.readouterr().err
