from dataclasses import dataclass

import pytest
import torch

from workbench.core import Variant, apply, config_from_dict, config_to_dict, registered_steps
from workbench.runtime.torch_runner import TorchRunner


@dataclass(frozen=True)
class ScaleConfig:
    factor: float = 2.0
    layers: tuple = ("a",)

    def __post_init__(self):
        if self.factor <= 0:
            raise ValueError("factor must be > 0")


def _scale(variant, config):
    model = torch.nn.Linear(2, 2)
    return Variant(name=f"{variant.name}-x{config.factor}", task=variant.task, backend="torch", device="cpu",
                   precision="fp32", runner=TorchRunner(model), model=model)


@pytest.fixture(autouse=True)
def _scale_step(step_registry):
    step_registry("scale", ScaleConfig, _scale)


def _base():
    model = torch.nn.Linear(2, 2)
    return Variant(name="base", task="t", backend="torch", device="cpu", precision="fp32", runner=TorchRunner(model), model=model)


def test_apply_records_lineage_and_deterministic_id():
    base = _base()
    a = apply(base, ScaleConfig(3.0))
    b = apply(base, ScaleConfig(3.0))
    c = apply(base, ScaleConfig(4.0))
    assert a.parent_id == base.id and a.step == "scale"
    assert a.id == b.id != c.id
    assert a.lineage == (("scale", {"type": "ScaleConfig", "factor": 3.0, "layers": ["a"]}),)
    assert "step_seconds" in a.meta
    twice = apply(a, ScaleConfig(3.0))
    assert len(twice.lineage) == 2 and twice.id != a.id


def test_variant_is_frozen_and_validated():
    base = _base()
    with pytest.raises(Exception):
        base.name = "other"
    with pytest.raises(ValueError, match="backend"):
        Variant(name="x", task="t", backend="tensorflow", device="cpu", precision="fp32", runner=lambda x: x)
    with pytest.raises(ValueError, match="precision"):
        Variant(name="x", task="t", backend="torch", device="cpu", precision="int3", runner=lambda x: x)


def test_config_roundtrip_through_registry_only():
    cfg = ScaleConfig(5.0, ("a", "b"))
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown step config type"):
        config_from_dict({"type": "os.system", "factor": 1})


def test_apply_unknown_config_is_clear():
    @dataclass(frozen=True)
    class Nope:
        x: int = 1

    with pytest.raises(TypeError, match="no step registered for Nope"):
        apply(_base(), Nope())


def test_runner_returns_logits():
    out = _base()({"input": torch.ones(3, 2)})
    assert out.shape == (3, 2) and out.dtype == torch.float32


def test_step_registry_fixture_restores_the_registry(step_registry):
    @dataclass(frozen=True)
    class Temporary:
        x: int = 1

    step_registry("temporary", Temporary, lambda variant, config: variant)
    assert registered_steps()["temporary"] is Temporary and registered_steps()["scale"] is ScaleConfig
    with pytest.raises(ValueError, match="already registered"):
        step_registry("again", Temporary, lambda variant, config: variant)


def test_steps_of_earlier_tests_are_gone():
    # Runs after the test above (file order): its "temporary" step must not have leaked into this one.
    assert "temporary" not in registered_steps()
