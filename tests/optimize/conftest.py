"""The reduced candidate list of the optimize tests: the baseline, a real int8 arm, an arm that fails to build and an
arm doing twice the baseline's work, on the demo classifier in small mode under a temporary artifacts root."""
import pytest

from workbench.arms.base import Arm


def _broken(ctx):
    raise RuntimeError("no kernel for this op here")


def _double(ctx):
    from workbench.arms.cpu import built_variant

    built = built_variant(ctx.base, ctx)
    call = built.call
    built.call = lambda: (call(), call())[1]       # twice the baseline's work per call: clearly slower
    return built


def _provider(task_kind, isa, calibration, budget, device="cpu"):
    from workbench.arms.cpu import cpu_arms

    keep = {a.name: a for a in cpu_arms(isa, calibration=calibration and str(calibration))}
    return [keep["torch-fp32"], keep["ort-int8-dynamic"], Arm("broken-arm", "int8", _broken),
            Arm("double-work", "int8", _double)], []


@pytest.fixture()
def small(monkeypatch, tmp_path):
    from workbench.optimize import candidates

    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(candidates, "PROVIDERS", [("test", _provider)])
    return tmp_path


