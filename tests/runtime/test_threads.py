"""Every runner takes its intra-op thread count when it is created and runs at it; rows record the count that ran."""
import pytest
import torch

from workbench.core import Variant
from workbench.measure import measure_variant
from workbench.measure.batching import SweepConfig, sweep_batching
from workbench.runtime import runner_threads, with_threads
from workbench.runtime.ort import OrtRunner
from workbench.runtime.threads import check_threads, torch_threads
from workbench.runtime.torch_runner import TorchRunner
from workbench.tasks import from_module

RUNNER_THREADS, GLOBAL_THREADS = 1, 2   # the runners are built at 1; torch's global count is 2 while they are timed


class Tiny(torch.nn.Module):
    """Records torch's intra-op count inside every forward call: the count the call really ran at."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = torch.nn.Embedding(30, 8), torch.nn.Linear(8, 3)
        self.seen: list[int] = []

    def forward(self, input_ids, attention_mask):
        self.seen.append(torch.get_num_threads())
        h = self.emb(input_ids) * attention_mask[..., None]
        return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True))


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    """(task, torch variant, ORT variant), both runners created at RUNNER_THREADS."""
    torch.manual_seed(0)
    model = Tiny().eval()
    ids = torch.randint(0, 30, (2, 6))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (ids, inputs["attention_mask"]), str(path), input_names=["input_ids", "attention_mask"],
                      output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "logits": {0: "b"}})
    task = from_module(model, lambda v: 1.0, inputs, name="tiny")
    torch_v = Variant(name="torch-fp32", task="tiny", backend="torch", device="cpu", precision="fp32",
                      runner=TorchRunner(model, "cpu", ("input_ids", "attention_mask"), threads=RUNNER_THREADS),
                      model=model)
    ort_v = Variant(name="ort-fp32", task="tiny", backend="onnxruntime", device="cpu", precision="fp32",
                    runner=OrtRunner(path, threads=RUNNER_THREADS), artifact_path=path,
                    meta={"ort_threads": RUNNER_THREADS})
    return task, torch_v, ort_v


@pytest.fixture
def ort_calls(monkeypatch):
    """The intra-op count (read from the session options) of every ORT session that ran a call."""
    seen: list[int] = []
    original = OrtRunner.__call__

    def spy(self, inputs):
        seen.append(self.session.get_session_options().intra_op_num_threads)
        return original(self, inputs)
    monkeypatch.setattr(OrtRunner, "__call__", spy)
    return seen


def test_rows_record_the_threads_each_runner_really_ran_at(arms, ort_calls):
    task, torch_v, ort_v = arms
    torch.set_num_threads(GLOBAL_THREADS)   # a different global count while timing: the runners must not follow it
    try:
        torch_v.model.seen.clear()
        torch_row = measure_variant(task, torch_v, batch_size=2, quality=False, max_seconds=0.3)
        ort_row = measure_variant(task, ort_v, batch_size=2, quality=False, max_seconds=0.3)
        sweep = sweep_batching(task, ort_v, SweepConfig(batch_sizes=(1, 2), point_seconds=0.2), progress=False)
        assert torch.get_num_threads() == GLOBAL_THREADS   # measuring leaves torch's global count as it found it
    finally:
        torch.set_num_threads(GLOBAL_THREADS)
    assert torch_v.model.seen and set(torch_v.model.seen) == {RUNNER_THREADS} == {torch_row["threads"]}
    assert ort_calls and set(ort_calls) == {RUNNER_THREADS} == {ort_row["threads"]}
    assert ort_v.runner.session.get_session_options().intra_op_num_threads == ort_row["threads"]
    assert [r["threads"] for r in sweep] == [RUNNER_THREADS, RUNNER_THREADS]


def test_asking_for_another_count_rebuilds_the_runner_at_it(arms, ort_calls):
    task, torch_v, ort_v = arms
    row = measure_variant(task, ort_v, batch_size=1, quality=False, max_seconds=0.2, threads=GLOBAL_THREADS)
    assert row["threads"] == GLOBAL_THREADS and set(ort_calls) == {GLOBAL_THREADS}   # the session that ran had 2
    assert ort_v.runner.threads == RUNNER_THREADS   # the variant given is never changed
    twin = with_threads(ort_v, GLOBAL_THREADS)
    assert twin.id == ort_v.id and twin.meta["ort_threads"] == GLOBAL_THREADS == runner_threads(twin)
    assert twin.runner.session.get_session_options().intra_op_num_threads == GLOBAL_THREADS
    assert with_threads(ort_v, None) is ort_v and with_threads(ort_v, RUNNER_THREADS) is ort_v
    torch_twin = with_threads(torch_v, GLOBAL_THREADS)
    assert torch_twin.runner.threads == GLOBAL_THREADS and torch_twin.model is torch_v.model


def test_runners_fix_their_count_at_creation(arms):
    _, torch_v, ort_v = arms
    before = torch.get_num_threads()
    other = before + 1
    with torch_threads(other):
        assert TorchRunner(torch.nn.Identity()).threads == other   # default: torch's count when the runner is made
        assert OrtRunner(ort_v.artifact_path).threads == other
    assert torch.get_num_threads() == before   # the previous count comes back
    with pytest.raises(ValueError, match=r"threads=0: use a positive number"):
        check_threads(0)
    with pytest.raises(ValueError, match="threads=0"):
        TorchRunner(torch.nn.Identity(), threads=0)
