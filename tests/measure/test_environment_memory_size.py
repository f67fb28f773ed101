import torch

from workbench.measure.environment import environment_fingerprint
from workbench.measure.memory import measure_peak_memory
from workbench.measure.size import serialized_bytes
from workbench.runtime.weights import parameter_count


def test_environment_fingerprint_has_the_facts_a_timing_needs():
    env = environment_fingerprint()
    for key in ("cpu", "cpu_isa", "logical_cpus", "torch_threads", "packages", "git_revision", "python", "gpu"):
        assert key in env
    assert "torch" in env["packages"]


def _touch_fresh_pages(nbytes: int) -> int:
    """Map and write ``nbytes`` of new anonymous memory. Not numpy: after other tests a caching allocator (TBB's
    malloc, loaded by OpenVINO) hands back pages that are already resident, and RSS does not move."""
    import mmap

    with mmap.mmap(-1, nbytes) as block:
        block.write(b"\1" * nbytes)
        return block[nbytes - 1]


def test_peak_memory_sees_an_allocation():
    row = measure_peak_memory(lambda: _touch_fresh_pages(40 * 2**20))
    assert row["rss_delta_mb"] >= 30


def test_size_counts_tied_weights_once():
    emb = torch.nn.Embedding(1000, 64)
    head = torch.nn.Linear(64, 1000, bias=False)
    head.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head": head})
    assert parameter_count(model) == 64_000
    assert 256_000 <= serialized_bytes(model) < 300_000


def test_environment_id_names_the_machine_and_software_not_the_run():
    from workbench.measure.environment import environment_id

    env = environment_fingerprint()
    assert env["environment_id"] == environment_id(env) and len(env["environment_id"]) == 12
    same_machine_other_run = {**env, "hostname": "twin", "git_revision": "abc1234-dirty", "torch_threads": 1}
    assert environment_id(same_machine_other_run) == env["environment_id"]
    for changed in ({"cpu": "Other CPU"}, {"cpu_isa": ["avx2"]}, {"gpu": {"name": "H100"}},
                    {"packages": {**env["packages"], "torch": "0.0.1"}}, {"logical_cpus": 1024}, {"python": "3.0.0"}):
        assert environment_id({**env, **changed}) != env["environment_id"], changed


def test_gpu_memory_counts_allocations_torch_does_not_see(monkeypatch):
    """An ORT variant on CUDA allocates in ONNX Runtime's arena: torch's allocator reports 0, the device does not."""
    import torch

    from workbench.measure import memory

    used = {"mb": 1000.0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: ((8192 - used["mb"]) * 2**20, 8192 * 2**20))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 0)

    def ort_call():  # stands in for a session.run that takes 300 MB on the device, then frees 100 MB
        used["mb"] = 1300.0
        import time
        time.sleep(0.05)
        used["mb"] = 1200.0

    row = memory.measure_peak_memory(ort_call, "cuda")
    assert row["cuda_max_allocated_mb"] == 0.0
    assert row["cuda_device_used_peak_mb"] == 1300.0 and row["cuda_device_used_delta_mb"] == 300.0
