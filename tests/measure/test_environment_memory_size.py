import numpy as np
import torch

from workbench.measure.environment import environment_fingerprint
from workbench.measure.memory import measure_peak_memory
from workbench.measure.size import parameter_count, serialized_bytes


def test_environment_fingerprint_has_the_facts_a_timing_needs():
    env = environment_fingerprint()
    for key in ("cpu", "cpu_isa", "logical_cpus", "torch_threads", "packages", "git_revision", "python", "gpu"):
        assert key in env
    assert "torch" in env["packages"]


def test_peak_memory_sees_an_allocation():
    row = measure_peak_memory(lambda: np.ones(40 * 2**20, dtype=np.uint8).sum())
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
