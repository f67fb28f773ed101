"""OpenVINO: a compiled model on the CPU plugin with pinned threads, and a runner that returns torch logits.

``OpenVinoRunner`` is the OpenVINO twin of :class:`workbench.runtime.ort.OrtRunner`: same inputs dict in
(input_ids, attention_mask, ...), same fp32 logits tensor out. Its thread count is fixed when it is built
(``INFERENCE_NUM_THREADS``, one stream and the latency hint, or N streams that split each batch) and read back from
the compiled model. The precision the CPU plugin computes in is asked for explicitly (``INFERENCE_PRECISION_HINT``):
f32, or bf16 only where the plugin reports BF16 among its capabilities; an int8 model (NNCF) runs its int8 kernels
whatever the hint.

openvino is imported inside the functions so that ``import workbench`` stays light.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.runtime.arrays import to_numpy
from workbench.runtime.threads import check_threads, default_threads

HINTS = ("f32", "bf16")


def openvino_available() -> tuple[bool, str]:
    """(True, version) when openvino imports, else (False, why and how to install it)."""
    try:
        import openvino as ov
    except Exception as exc:  # noqa: BLE001 - a broken install is as unavailable as a missing one
        return False, f"openvino is not importable ({type(exc).__name__}: {exc}): pip install openvino nncf"
    return True, f"openvino {ov.__version__}"


def cpu_capabilities() -> list[str]:
    """What the OpenVINO CPU plugin says this CPU can compute in (e.g. ['FP32', 'INT8', 'BF16', ...])."""
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_capable() -> tuple[bool, str]:
    """(True, how) when the CPU plugin has native bf16 kernels here, else (False, why not)."""
    caps = cpu_capabilities()
    if "BF16" in caps:
        return True, "OpenVINO CPU plugin reports BF16 (AMX or AVX512-BF16 kernels)"
    return False, f"OpenVINO CPU plugin has no BF16 on this CPU (capabilities {caps}): it would run f32 instead"


class OpenVinoRunner:
    """Runs an OpenVINO IR (.xml) or ONNX file on the CPU plugin: inputs dict in, logits (torch, fp32) out.

    Args:
        path: the model (.xml with its .bin, or .onnx).
        threads: intra-op threads, fixed for the compiled model's life (default: torch's count when built).
        precision: "f32" or "bf16" inference precision for float ops (bf16 needs :func:`bf16_capable`).
        streams: 1 runs each call on one stream with all ``threads``. N > 1 is the plugin's throughput mode used for
            one call: the batch is split into up to N row blocks that run at once, one per stream of threads / N
            cores, each on a model compiled for its exact input shape (compiled on the first call of a shape). On
            few cores this avoids the per-op thread barriers a tiny model pays on every layer; batch 1 runs on one
            stream (threads / N cores), so it is slower there.

    Example:
        >>> runner = OpenVinoRunner("model.xml", threads=2)                  # doctest: +SKIP
        >>> logits = runner(dict(tokenizer(["hello"], return_tensors="pt")))
    """

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32", streams: int = 1):
        import openvino as ov

        if precision not in HINTS:
            raise ValueError(f"OpenVINO inference precision {precision!r} unknown: use one of {HINTS}")
        if precision == "bf16":
            ok, why = bf16_capable()
            if not ok:  # never let the plugin fall back to f32 under a bf16 label
                raise ValueError(f"bf16 not available here: {why}; use precision='f32'")
        self.path, self.precision = Path(path), precision
        if not self.path.is_file():
            raise FileNotFoundError(f"OpenVINO model {self.path} does not exist: apply OpenVinoConfig to an ONNX "
                                    "variant to convert it")
        threads = check_threads(threads) or default_threads()
        if not isinstance(streams, int) or streams < 1 or streams > threads:
            raise ValueError(f"streams={streams!r} must be an integer from 1 to the thread count ({threads}): each "
                             "stream needs at least one core")
        self.streams, self._core = streams, ov.Core()
        self.compiled = self._compile(str(self.path), threads)
        self.threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))  # what the plugin really uses
        self.request = self.compiled.create_infer_request()
        self.inputs = {i.get_any_name(): i for i in self.compiled.inputs}
        self._by_shape: dict[tuple, list] = {}   # streams > 1: input shape -> that shape's infer requests

    def _compile(self, model, threads: int):
        return self._core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": self.streams,
            "PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": self.precision})

    def _requests_for(self, feed: dict[str, np.ndarray]) -> list:
        """One infer request per stream on a model compiled for exactly these input shapes (cached per shape)."""
        shape = tuple(sorted((k, v.shape) for k, v in feed.items()))
        if shape not in self._by_shape:
            model = self._core.read_model(str(self.path))
            model.reshape({k: list(v.shape) for k, v in feed.items()})
            compiled = self._compile(model, self.threads)
            self._by_shape[shape] = [compiled.create_infer_request() for _ in range(self.streams)]
        return self._by_shape[shape]

    def with_threads(self, threads: int) -> "OpenVinoRunner":
        """A new compiled model on the same file at another thread count (this runner is unchanged)."""
        return OpenVinoRunner(self.path, threads, self.precision, min(self.streams, threads))

    def __getstate__(self):  # compiled models do not pickle: rebuild from the file
        return {"path": self.path, "threads": self.threads, "precision": self.precision, "streams": self.streams}

    def __setstate__(self, state):
        self.__init__(**state)

    def feed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Numpy arrays for the model's inputs; a missing attention mask / token type ids is filled in."""
        arrays = {k: to_numpy(v) for k, v in inputs.items() if k in self.inputs}
        ids = arrays.get("input_ids")
        if ids is not None and "attention_mask" in self.inputs and "attention_mask" not in arrays:
            arrays["attention_mask"] = np.ones_like(ids)
        if ids is not None and "token_type_ids" in self.inputs and "token_type_ids" not in arrays:
            arrays["token_type_ids"] = np.zeros_like(ids)
        missing = set(self.inputs) - set(arrays)
        if missing:
            raise ValueError(f"the OpenVINO model needs inputs {sorted(missing)} that were not given "
                             f"(got {sorted(inputs)})")
        return {k: v.astype(np.int64, copy=False) if v.dtype.kind in "iu" else v for k, v in arrays.items()}

    def __call__(self, inputs: dict[str, Any]) -> torch.Tensor:
        feed = self.feed(inputs)
        if self.streams == 1:
            out = self.request.infer(feed)
            return torch.from_numpy(np.asarray(out[self.compiled.outputs[0]], dtype=np.float32).copy())
        rows = len(next(iter(feed.values())))
        blocks = [{k: v[sl] for k, v in feed.items()} for sl in _row_blocks(rows, self.streams)]
        started = []
        for i, block in enumerate(blocks):   # same-shape blocks take distinct requests of that shape's model
            request = self._requests_for(block)[i]
            request.start_async(block)
            started.append(request)
        for request in started:
            request.wait()
        return torch.from_numpy(np.concatenate([np.asarray(r.get_output_tensor(0).data, dtype=np.float32).copy()
                                                for r in started]))

    def kernel_profile(self, inputs: dict[str, Any], runs: int = 5) -> dict[str, float]:
        """Share of node time per (node type, kernel) over ``runs`` calls, from the plugin's performance counters.

        The kernel name carries its ISA and precision (``brgemm_avx512_amx_I8``, ``jit_avx512_f32``), which is what
        says whether int8 / bf16 kernels actually ran. A separate compiled model with ``PERF_COUNT`` on is used, so
        this runner's timings are untouched.
        """
        import openvino as ov

        compiled = ov.Core().compile_model(str(self.path), "CPU", {
            "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERF_COUNT": True,
            "INFERENCE_PRECISION_HINT": self.precision})
        request, feed, per_kernel = compiled.create_infer_request(), self.feed(inputs), Counter()
        request.infer(feed)  # first call: allocation, not representative
        for _ in range(runs):
            request.infer(feed)
            for info in request.get_profiling_info():
                per_kernel[f"{info.node_type}:{info.exec_type}"] += info.real_time.total_seconds()
        total = sum(per_kernel.values()) or 1.0
        return {k: round(v / total, 4) for k, v in per_kernel.most_common()}


def _row_blocks(rows: int, parts: int) -> list[slice]:
    """``rows`` split into at most ``parts`` contiguous blocks, sizes differing by at most one (none empty)."""
    parts = max(1, min(parts, rows))
    bounds = np.linspace(0, rows, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def precision_shares(profile: dict[str, float]) -> dict[str, float]:
    """Time share per compute precision (int8, bf16, f32, other) from a :meth:`OpenVinoRunner.kernel_profile`."""
    shares: Counter = Counter()
    for kernel, share in profile.items():
        tail = kernel.rsplit("_", 1)[-1].lower()
        group = "int8" if tail in ("i8", "u8") else tail if tail in ("bf16", "f32") else "other"
        shares[group] += share
    return {k: round(v, 4) for k, v in shares.items()}


__all__ = ["OpenVinoRunner", "openvino_available", "bf16_capable", "cpu_capabilities", "precision_shares", "HINTS"]
