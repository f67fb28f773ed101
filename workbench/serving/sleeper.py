"""A Triton Python-backend model with a fixed service time: an M/D/1 queue, to prove the load generator honest.

One instance, no batching, each request sleeps ``sleep_ms``: under Poisson arrivals at utilisation rho the mean
latency must be the M/D/1 value S + rho*S / (2(1 - rho)) (:func:`md1_mean_ms`), S measured by Triton itself.
Used by the load tests and ``benchmarks/load.py``.
"""
from __future__ import annotations

from pathlib import Path

MODEL_PY = '''
import ctypes, json, time
import numpy as np
import triton_python_backend_utils as pb_utils

_set = ctypes.pythonapi.PyCapsule_SetName
_set.argtypes = (ctypes.py_object, ctypes.c_char_p)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.seconds = float(config["parameters"]["SLEEP_MS"]["string_value"]) / 1e3

    def execute(self, requests):
        responses = []
        for _ in requests:
            time.sleep(self.seconds)
            capsule = np.zeros(1, np.float32).__dlpack__()
            tensor = pb_utils.Tensor.from_dlpack("Y", capsule)
            _set(capsule, b"used_dltensor")  # numpy's capsule destructor only knows this name (see triton_twin)
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
'''

CONFIG = '''name: "sleeper"
backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters { key: "SLEEP_MS" value: { string_value: "%s" } }
'''


def sleeper_repository(work: Path, sleep_ms: float = 15.0):
    """(backends, repo, dist) with one model "sleeper": a fixed service time of ``sleep_ms``, one instance."""
    from workbench.serving.serve_check import python_backend_dir, triton_distribution

    if sleep_ms <= 0:
        raise ValueError(f"sleep_ms {sleep_ms} must be > 0")
    dist = triton_distribution()
    python_backend_dir(Path(work), dist)
    model = Path(work) / "repo" / "sleeper"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG % sleep_ms)
    (model / "1" / "model.py").write_text(MODEL_PY)
    return Path(work) / "backends", Path(work) / "repo", dist


def sleeper_input(i: int) -> dict:
    import numpy as np

    return {"X": np.array([float(i)], np.float32)}


def md1_mean_ms(service_ms: float, rho: float) -> float:
    """Mean time in system of an M/D/1 queue: service plus the Pollaczek-Khinchine wait rho*S / (2(1 - rho))."""
    if not 0 <= rho < 1:
        raise ValueError(f"utilisation {rho} must be in [0, 1): the queue grows without bound at or above 1")
    return service_ms + rho * service_ms / (2 * (1 - rho))


__all__ = ["sleeper_repository", "sleeper_input", "md1_mean_ms", "MODEL_PY", "CONFIG"]
