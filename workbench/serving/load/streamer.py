"""A decoupled (streaming) Triton Python-backend test model: ``n`` tokens, the first after ``first_ms``, then one
every ``gap_ms``. Known TTFT and inter-token gaps, to check the streaming load generator against
(:mod:`workbench.serving.load.stream`)."""
from __future__ import annotations

from pathlib import Path

MODEL_PY = '''
import ctypes, json, time
import numpy as np
import triton_python_backend_utils as pb_utils

_set = ctypes.pythonapi.PyCapsule_SetName
_set.argtypes = (ctypes.py_object, ctypes.c_char_p)


def _tensor(name, array):
    capsule = np.ascontiguousarray(array).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set(capsule, b"used_dltensor")
    return tensor


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.first = float(params["FIRST_MS"]["string_value"]) / 1e3
        self.gap = float(params["GAP_MS"]["string_value"]) / 1e3

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            n = int(np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "MAX_TOKENS")).reshape(-1)[0])
            time.sleep(self.first)
            for i in range(n):
                if i:
                    time.sleep(self.gap)
                sender.send(pb_utils.InferenceResponse(output_tensors=[_tensor("TOKEN", np.array([i], np.int64))]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''

CONFIG = '''name: "streamer"
backend: "python"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [ { name: "MAX_TOKENS" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "TOKEN" data_type: TYPE_INT64 dims: [ 1 ] } ]
instance_group [ { count: %d kind: KIND_CPU } ]
parameters { key: "FIRST_MS" value: { string_value: "%s" } }
parameters { key: "GAP_MS" value: { string_value: "%s" } }
'''


def streamer_repository(work: Path, first_ms: float = 20.0, gap_ms: float = 5.0, instances: int = 4):
    """(backends, repo, dist) with one decoupled model "streamer" (see the module doc)."""
    from workbench.serving.bundle.triton_server import python_backend_dir, triton_distribution

    dist = triton_distribution()
    python_backend_dir(Path(work), dist)
    model = Path(work) / "repo" / "streamer"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG % (instances, first_ms, gap_ms))
    (model / "1" / "model.py").write_text(MODEL_PY)
    return Path(work) / "backends", Path(work) / "repo", dist


__all__ = ["streamer_repository", "MODEL_PY", "CONFIG"]
