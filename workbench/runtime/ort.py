"""ONNX Runtime: sessions with pinned threads and a chosen execution provider, and a runner that returns torch logits.

``OrtRunner`` is the ONNX twin of :class:`workbench.runtime.torch_runner.TorchRunner`: a Variant calls it with the same
inputs dict (input_ids, attention_mask, ...) and gets the same logits tensor back, so measurement and
evaluation do not care which backend runs. Decoder LMs exported with a KV cache (``past_key_values.*`` inputs)
run too: without a cache in the inputs the runner feeds an empty one, and :meth:`OrtRunner.generate_greedy`
decodes token by token with the cache carried between calls.

onnxruntime is imported inside the functions so that ``import workbench`` stays light.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.runtime.arrays import to_numpy
from workbench.runtime.threads import check_threads, default_threads  # noqa: F401 (re-exported)

log = logging.getLogger("workbench")

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
LEVELS = ("disable", "basic", "extended", "all")
# ONNX element types -> numpy, for casting caller inputs to what the graph declares.
_NP_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
             "tensor(float16)": np.float16, "tensor(bool)": np.bool_}


class OnnxModelError(ValueError):
    """An ONNX file that is missing, empty, truncated or otherwise unloadable."""


def select_providers(device: str = "cpu") -> tuple[list[str], str]:
    """Execution providers for ``device`` and a note saying what was chosen and why.

    On "cuda" TensorRT then CUDA are used when this onnxruntime build has them; otherwise the session falls back
    to CPU and the note says the GPU provider is missing (install ``onnxruntime-gpu``).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"], "CPUExecutionProvider (device cpu)"
    if device != "cuda":
        raise ValueError(f"device {device!r} unknown: use cpu or cuda")
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if not gpu:
        note = (f"no GPU execution provider in this onnxruntime build (available: {available}); running on CPU. "
                "Install onnxruntime-gpu for CUDA/TensorRT")
        log.warning(note)
        return ["CPUExecutionProvider"], note
    return gpu + ["CPUExecutionProvider"], f"{gpu[0]} (GPU), CPU fallback for unsupported nodes"


def check_onnx_file(path: str | Path) -> Path:
    """Fail early, with the fix, on a missing/empty/truncated/corrupt ONNX file (before ORT's terse errors)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {path} does not exist: export it first (workbench.steps.export_onnx)")
    if path.stat().st_size == 0:
        raise OnnxModelError(f"ONNX model {path} is empty (0 bytes): the export was interrupted; export it again")
    try:
        # load_external_data=False: checks the graph protobuf without reading GBs of weights twice.
        onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise OnnxModelError(f"ONNX model {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                             "export it again or restore the file from its bundle") from exc
    return path


def create_session(path: str | Path, device: str = "cpu", threads: int | None = None, level: str = "all",
                   optimized_path: str | Path | None = None):
    """An ``onnxruntime.InferenceSession`` with fixed intra-op threads and the provider chosen for ``device``.

    Args:
        path: the .onnx file.
        device: "cpu" or "cuda" (falls back to CPU with a logged note when no GPU provider exists).
        threads: intra-op threads, fixed for the session's life; default
            :func:`~workbench.runtime.threads.default_threads` (torch's count when the session is created).
        level: graph optimisation level: disable, basic, extended or all.
        optimized_path: where to save the graph ORT optimised (to count fused ops), if wanted.

    Example:
        >>> sess = create_session("model.onnx", threads=2)      # doctest: +SKIP
        >>> sess.get_providers()
    """
    import onnxruntime as ort

    if level not in LEVELS:
        raise ValueError(f"graph optimisation level {level!r} unknown: use one of {LEVELS}")
    path = check_onnx_file(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = check_threads(threads) or default_threads()
    opts.inter_op_num_threads = 1  # one request at a time: parallelism comes from intra-op threads only
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle intra-op threads sleep instead of spinning: a spinning pool keeps taking a core after the call returns,
    # from whatever runs next on a small machine (the next arm of an interleaved run, a load client, the server's
    # other requests). On 2 cores the teacher timed right after an ORT int8 call ran 1.6x slower with spinning on,
    # which inflated the ORT arm's ratio 2.4x -> 1.4x; the ORT call itself is ~5% slower without it. The Triton
    # twin (serving.bundle.triton_twin) runs its sessions the same way.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if optimized_path:
        opts.optimized_model_filepath = str(optimized_path)
    providers, note = select_providers(device)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise OnnxModelError(f"onnxruntime cannot load {path}: {exc}") from exc
    session.provider_note = note  # why these providers (shown in diagnostics)
    return session


class OrtRunner:
    """Runs an ONNX model with ONNX Runtime: inputs dict in, logits (torch, fp32, CPU) out.

    Args:
        path: the .onnx file.
        device, threads, level: see :func:`create_session`. ``runner.threads`` is the session's intra-op count (read
            back from its options): what every call of this runner runs at.

    Example:
        >>> runner = OrtRunner("model.onnx", threads=2)                      # doctest: +SKIP
        >>> logits = runner(dict(tokenizer(["hello"], return_tensors="pt")))
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None, level: str = "all"):
        self.path, self.device, self.level = Path(path), device, level
        self.session = create_session(self.path, device, check_threads(threads) or default_threads(), level)
        self.threads = int(self.session.get_session_options().intra_op_num_threads)  # what the session really uses
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.past_names = [n for n in self.inputs if n.startswith("past_key_values")]
        self.past_axis = self._past_axis() if self.past_names else None

    def _past_axis(self) -> int:
        """Sequence axis of the past key/value inputs: the graph's own dim named like *sequence*, else the family's.

        Layouts differ between families and exporters ([B, H, S, D] for optimum's Llama/GPT-2, [B*H, D, S] for
        old Bloom, [B, S, 2D] for GPT-BigCode), so nothing here assumes a fixed rank or position.
        """
        from workbench.runtime.families import cache_axis, model_type_beside

        dims = self.inputs[self.past_names[0]].shape
        named = [i for i, d in enumerate(dims) if isinstance(d, str) and "sequence" in d]
        return named[0] if len(named) == 1 else cache_axis(model_type_beside(self.path))

    def past_length(self, arrays: dict[str, np.ndarray]) -> int:
        """Cached positions in ``arrays`` (0 when no past is given)."""
        first = arrays.get(self.past_names[0]) if self.past_names else None
        return 0 if first is None else int(first.shape[self.past_axis])

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def with_threads(self, threads: int) -> "OrtRunner":
        """A new session on the same file at another intra-op count (this runner is unchanged)."""
        return OrtRunner(self.path, self.device, threads, self.level)

    def __getstate__(self):  # sessions do not pickle: rebuild from the file
        return {"path": self.path, "device": self.device, "threads": self.threads, "level": self.level}

    def __setstate__(self, state):
        self.__init__(**state)

    def feed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Numpy arrays for the graph's inputs: cast to its dtypes, missing optional ones filled in."""
        arrays = {k: to_numpy(v) for k, v in inputs.items() if k in self.inputs}
        if "input_ids" not in self.inputs:  # not a token model: feed what was given, nothing to fill in
            return self._cast(arrays)
        if "input_ids" not in arrays:
            raise ValueError(f"inputs need 'input_ids' (got {sorted(inputs)}); the model takes {sorted(self.inputs)}")
        ids = arrays["input_ids"]
        batch, seq = ids.shape[:2]
        if self.past_names and self.past_names[0] not in arrays:
            arrays.update(self.empty_past(batch))
        past_len = self.past_length(arrays)
        if "attention_mask" in self.inputs and "attention_mask" not in arrays:
            arrays["attention_mask"] = np.ones((batch, past_len + seq), dtype=np.int64)
        if "token_type_ids" in self.inputs and "token_type_ids" not in arrays:
            arrays["token_type_ids"] = np.zeros_like(ids)
        if "position_ids" in self.inputs and "position_ids" not in arrays:
            # Left-padded rows start counting at their first real token, as transformers does.
            mask = arrays["attention_mask"]
            pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
            arrays["position_ids"] = pos[:, -seq:].astype(np.int64)
        return self._cast(arrays)

    def _cast(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(arrays)
        if missing:
            raise ValueError(f"the ONNX model needs inputs {sorted(missing)} that were not given")
        return {k: v.astype(_NP_TYPES.get(self.inputs[k].type, v.dtype), copy=False) for k, v in arrays.items()}

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        """Zero-length KV cache: each past input's declared shape with batch rows and 0 cached positions.

        Fixed dims (heads, head size) come from the graph; symbolic ones other than batch and sequence from the
        family adapter (config.json beside the model), so GQA, Gemma's head_dim and other layouts all fit.
        """
        out = {}
        for name in self.past_names:
            dims = list(self.inputs[name].shape)
            shape = [0 if i == self.past_axis else batch if i == 0 else d for i, d in enumerate(dims)]
            if any(not isinstance(d, int) for d in shape):
                shape = list(self._family_cache_shape(batch))
            out[name] = np.zeros(shape, dtype=_NP_TYPES.get(self.inputs[name].type, np.float32))
        return out

    def _family_cache_shape(self, batch: int) -> tuple[int, ...]:
        from transformers import AutoConfig

        from workbench.runtime.families import cache_shape

        if not (self.path.parent / "config.json").is_file():
            raise ValueError(f"{self.path}: the past_key_values inputs have symbolic head dims and no config.json "
                             "is beside the model to read them from: keep the exporter's config.json with it")
        return cache_shape(AutoConfig.from_pretrained(self.path.parent), batch, 0)

    def run(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """All outputs by name (logits and, for decoders, ``present.*`` caches)."""
        return dict(zip(self.outputs, self.session.run(None, self.feed(inputs))))

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        logits = self.session.run(["logits"] if "logits" in self.outputs else self.outputs[:1], self.feed(inputs))[0]
        return torch.from_numpy(np.asarray(logits, dtype=np.float32))

    def generate_greedy(self, input_ids: torch.Tensor, max_new_tokens: int = 16, on_token=None) -> torch.Tensor:
        """Greedy decoding with the exported KV cache: one prefill call, then one call per new token.

        Args:
            input_ids: [batch, prompt_len] prompt tokens (no padding).
            max_new_tokens: tokens to append.
            on_token: called with no argument as soon as each new token exists (a clock marking emission times,
                so TTFT and inter-token latency come from this very call).
        Returns:
            [batch, prompt_len + max_new_tokens] token ids.
        """
        if not self.past_names:
            raise ValueError(f"{self.path} has no past_key_values inputs: export the LM with a KV cache "
                             "(ExportOnnxConfig(with_past=True)) to generate in ONNX Runtime")
        ids = to_numpy(input_ids).astype(np.int64)
        out = self.run({"input_ids": ids})
        tokens = [ids]
        for step in range(max_new_tokens):
            nxt = out["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
            tokens.append(nxt)
            if on_token is not None:
                on_token()
            if step == max_new_tokens - 1:
                break
            past = {p: out[p.replace("past_key_values", "present")] for p in self.past_names}
            total = self.past_length(past) + 1
            out = self.run({"input_ids": nxt, **past, "attention_mask": np.ones((ids.shape[0], total), np.int64)})
        return torch.from_numpy(np.concatenate(tokens, axis=1))
