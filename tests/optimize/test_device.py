"""optimize's device and instances are checked before any work: a GPU asked for where there is none, or an instance
of another kind than the device (its hourly price would be put on throughput measured on other hardware)."""
import pytest
import torch

from workbench.optimize import _instances_for, optimize


def test_cuda_without_a_gpu_is_refused_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"torch sees no GPU here .* or use --device cpu"):
        optimize("text-classification", device="cuda", study="dev", progress=False)
    with pytest.raises(ValueError, match="device 'tpu': use cpu or cuda"):
        _instances_for("tpu", None)


def test_instances_follow_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _instances_for("cuda", None) == ("g6.xlarge",) and _instances_for("cpu", None) == ("c7i.large",)
    assert _instances_for("cuda", "g6.xlarge,g5.xlarge") == ("g6.xlarge", "g5.xlarge")
    with pytest.raises(ValueError, match="c7i.large is a cpu instance but the search runs on cuda.*--instances "
                                         "g6.xlarge"):
        _instances_for("cuda", ["c7i.large"])
    with pytest.raises(ValueError, match="g6.xlarge is a gpu instance but the search runs on cpu"):
        _instances_for("cpu", ["g6.xlarge"])
    with pytest.raises(ValueError, match="'no-such-box' is not in the price table"):
        _instances_for("cpu", ["no-such-box"])
