"""Triton Python-backend twin of an exported ONNX model (copied as ``model.py`` by ``workbench serve-check``).

Not imported by workbench itself: it runs inside Triton's Python-backend stub process, where
``triton_python_backend_utils`` exists. It serves the bundle's own ``model.onnx`` through onnxruntime with the same
inputs, outputs, max_batch_size and dynamic batching as the bundle's config, doing what Triton's onnxruntime backend
does with a dynamic batch: requests of equal per-example shape are concatenated on the batch axis, run as one ORT
call, and the outputs split back per request.

Tensors cross the stub boundary by DLPack: the stub's numpy bridge was built for numpy 1.x and misreads numpy 2
arrays, while DLPack carries only the buffer, dtype and shape.
"""
import ctypes
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

# After Tensor.from_dlpack consumes a capsule the stub renames it "used_dlpack"; numpy's capsule destructor only
# recognises the standard "used_dltensor" and would print a spurious error for every response.
_USED = b"used_dltensor"
_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes = (ctypes.py_object, ctypes.c_char_p)


def _to_triton(name: str, array: np.ndarray):
    capsule = np.ascontiguousarray(array).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_capsule_name(capsule, _USED)
    return tensor


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        threads = int(config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value", "1"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads would spin on the cores the open-loop client shares (2-core machines): sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        feeds = [{n: np.from_dlpack(pb_utils.get_input_tensor_by_name(r, n)) for n in self.input_names}
                 for r in requests]
        responses = [None] * len(requests)
        groups = {}
        for i, feed in enumerate(feeds):  # only same-shaped examples can share one batch
            groups.setdefault(tuple(feed[n].shape[1:] for n in self.input_names), []).append(i)
        for members in groups.values():
            batch = {n: np.concatenate([feeds[i][n] for i in members]) for n in self.input_names}
            outputs = self.session.run(self.output_names, batch)
            start = 0
            for i in members:
                size = feeds[i][self.input_names[0]].shape[0]
                tensors = [_to_triton(n, out[start:start + size]) for n, out in zip(self.output_names, outputs)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += size
        return responses
