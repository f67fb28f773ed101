"""Triton Python-backend model (decoupled: one response per token) for a causal-LM bundle's ONNX graph.

Not imported by workbench itself: copied as ``model.py`` by :func:`workbench.serving.load.lm_stream.lm_stream_repository`
and run inside Triton's Python-backend stub. Greedy decoding over the bundle's full-sequence forward (the served LM
graph has no KV-cache tensors, so each token re-runs the whole sequence: fine for the demo LM, quadratic for long
outputs). Each token is sent as soon as it is chosen, then a final empty response closes the stream. Tensors cross
the stub boundary by DLPack (see triton_twin).
"""
import ctypes
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes = (ctypes.py_object, ctypes.c_char_p)


def _token(value: int):
    capsule = np.array([value], np.int64).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack("TOKEN", capsule)
    _set_capsule_name(capsule, b"used_dltensor")
    return pb_utils.InferenceResponse(output_tensors=[tensor])


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        params = json.loads(args["model_config"]).get("parameters", {})
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_thread_count", {}).get("string_value", "1"))
        options.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.logits = "logits" if "logits" in outputs else outputs[0]
        self.eos = int(params.get("eos_token_id", {}).get("string_value", "-1"))

    def _next(self, ids: np.ndarray) -> int:
        feed = {"input_ids": ids}
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = np.ones_like(ids)
        if "position_ids" in self.inputs:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        logits = self.session.run([self.logits], feed)[0]          # [1, seq, vocab]
        return int(logits[0, -1].argmax())

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            ids = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "INPUT_IDS")).astype(np.int64)
            ids = ids.reshape(1, -1)
            n = int(np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "MAX_NEW_TOKENS")).reshape(-1)[0])
            for _ in range(max(n, 0)):
                token = self._next(ids)
                sender.send(_token(token))
                ids = np.concatenate([ids, np.array([[token]], np.int64)], axis=1)
                if token == self.eos:
                    break
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
