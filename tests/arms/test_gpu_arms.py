"""The GPU encoder arms: gated on the GPU's facts, built by casting the baseline's model on the context's device (the
same code runs here on CPU with a stand-in task)."""
import dataclasses
from types import SimpleNamespace

from workbench.arms.base import ArmContext
from workbench.arms.gpu import OnDevice, gpu_arms

NONE = {"available": False}
T4 = {"available": True, "name": "Tesla T4", "capability": (7, 5)}
H100 = {"available": True, "name": "NVIDIA H100", "capability": (9, 0)}


def test_every_arm_says_why_it_does_not_run_without_a_gpu():
    arms = gpu_arms(NONE)
    assert [a.name for a in arms] == ["torch-fp32", "torch-fp16", "torch-compile-fp16", "torch-bf16",
                                      "torch-compile-bf16"]
    assert sum(a.baseline for a in arms) == 1 and not any(a.applies for a in arms)
    assert all("no CUDA device" in a.skip_reason for a in arms)


def test_bf16_arms_need_ampere_fp16_runs_from_volta():
    by_name = {a.name: a for a in gpu_arms(T4)}
    assert by_name["torch-fp16"].applies and by_name["torch-compile-fp16"].applies
    assert "no bf16 tensor cores" in by_name["torch-bf16"].skip_reason
    assert all(a.applies for a in gpu_arms(H100))


@dataclasses.dataclass(frozen=True)
class _Variant:
    device: str
    precision: str
    model: object
    meta: dict = dataclasses.field(default_factory=dict)


class _Task:
    """Stand-in task: its baseline(device, precision, source) records the cast and returns a variant-like object."""

    def __init__(self):
        self.casts = []

    def baseline(self, device, precision, source=None):
        self.casts.append((device, precision, source))
        return _Variant(device, precision, source)


def test_a_precision_is_cast_once_on_the_contexts_device_and_shared_by_its_arms():
    task = _Task()
    base = SimpleNamespace(model="fp32-model", device="cpu")
    ctx = ArmContext(base=base, inputs={"input_ids": [[1, 2]]}, task=task, device="cpu")
    assert OnDevice().variant(ctx) is base                     # fp32: the baseline itself
    first = OnDevice("fp16").variant(ctx)
    assert OnDevice("fp16").variant(ctx) is first              # the eager and compiled arm share one cast
    assert task.casts == [("cpu", "fp16", "fp32-model")]
    assert first.meta["example_inputs"] == {"input_ids": [[1, 2]]}   # a compile step compiles the timing batch at build


def test_the_gpu_context_and_baseline_arm_run_on_the_device_named(monkeypatch):
    """The GPU path on the demo classifier with the device the context names (cpu here): the fp32 baseline arm
    times a host batch and measures quality on that very variant."""
    from workbench.arms.gpu import gpu_context
    from workbench.tasks import get_task

    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    ctx = gpu_context(get_task("text-classification"), 2, 16, eval_limit=8, report_split="test", device="cpu")
    assert ctx.device == "cpu" and ctx.base.device == "cpu" and ctx.inputs["input_ids"].shape == (2, 16)
    baseline = gpu_arms(H100)[0]
    built = baseline.build(ctx)
    assert built.variant is ctx.base and built.call().shape[0] == 2
    assert built.report_quality().n_examples == 8
