"""Test models with a known service time, to check the load generator against queueing theory (M/D/1).

One instance, no batching, each request takes ``service_ms``:

- ``mode="sleep"``: the model sleeps (uses no CPU): a client that steals CPU cannot show up in its service time;
- ``mode="spin"``: the model burns ``service_ms`` of its own thread's CPU time (CPU-bound, like a real model on CPU):
  a client that takes the server's core stretches every service, and the M/D/1 check sees it.

``stall_at`` / ``stall_ms``: the ``stall_at``-th request (counting from 0, warm-up included) first stalls the model
for ``stall_ms`` (the coordinated-omission test: every request scheduled during the stall must show it). Under Poisson
arrivals at utilisation rho the latency must follow M/D/1 (:mod:`workbench.serving.load.md1`), S measured by Triton.
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
        params = json.loads(args["model_config"])["parameters"]
        self.seconds = float(params["SLEEP_MS"]["string_value"]) / 1e3
        self.spin = params["MODE"]["string_value"] == "spin"
        self.stall_at = int(params["STALL_AT"]["string_value"])
        self.stall = float(params["STALL_MS"]["string_value"]) / 1e3
        self.count = 0

    def execute(self, requests):
        responses = []
        for _ in requests:
            if self.count == self.stall_at:
                time.sleep(self.stall)
            self.count += 1
            if self.spin:   # CPU-bound: this thread's CPU time, so a stolen core stretches the service
                end = time.thread_time() + self.seconds
                while time.thread_time() < end:
                    pass
            else:
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
parameters { key: "MODE" value: { string_value: "%s" } }
parameters { key: "STALL_AT" value: { string_value: "%d" } }
parameters { key: "STALL_MS" value: { string_value: "%s" } }
'''


def sleeper_repository(work: Path, sleep_ms: float = 15.0, mode: str = "sleep", stall_at: int = -1,
                       stall_ms: float = 0.0):
    """(backends, repo, dist) with one model "sleeper": a fixed service time of ``sleep_ms``, one instance (see the
    module doc for ``mode`` and the stall)."""
    from workbench.serving.bundle.triton_server import python_backend_dir, triton_distribution

    if sleep_ms <= 0 or stall_ms < 0:
        raise ValueError(f"sleep_ms {sleep_ms} must be > 0 and stall_ms {stall_ms} >= 0")
    if mode not in ("sleep", "spin"):
        raise ValueError(f"mode {mode!r}: use 'sleep' (no CPU) or 'spin' (CPU-bound)")
    dist = triton_distribution()
    python_backend_dir(Path(work), dist)
    model = Path(work) / "repo" / "sleeper"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG % (sleep_ms, mode, stall_at, stall_ms))
    (model / "1" / "model.py").write_text(MODEL_PY)
    return Path(work) / "backends", Path(work) / "repo", dist


def sleeper_input(i: int) -> dict:
    import numpy as np

    return {"X": np.array([float(i)], np.float32)}


__all__ = ["sleeper_repository", "sleeper_input", "MODEL_PY", "CONFIG"]
