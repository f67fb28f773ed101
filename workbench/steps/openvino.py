"""OpenVINO as a backend of its own, fed from the workbench's fp32 ONNX export: fp32, bf16 (only where the CPU has
native bf16), int8 weight compression (``nncf.compress_weights``) and static int8 (``nncf.quantize`` on the task's
calibration split).

The result is an OpenVINO IR (.xml + .bin, weights kept fp32 where they are fp32) run by
:class:`workbench.runtime.openvino.OpenVinoRunner`. Static int8 needs calibration inputs on disk so that the config
stays a plain JSON-safe value: :func:`save_calibration_set` writes ``task.calibration_batches(...)`` to an .npz
(loaded without pickle) and the config names that file.

Example:
    >>> onnx = apply(task.baseline(), ExportOnnxConfig())                                  # doctest: +SKIP
    >>> calib = save_calibration_set(task.calibration_batches(128, batch_size=8))         # doctest: +SKIP
    >>> ov_int8 = apply(onnx, OpenVinoConfig.int8_static(calib))                           # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from workbench.core import Variant, register_step
from workbench.runtime import require_onnx_file
from workbench.steps.onnx_io import require_single_graph
from workbench.runtime.arrays import to_numpy
from workbench.steps.onnx_io import CARRIED_META, step_dir
from workbench.util.files import artifacts_root, publish_dir, write_checksums, write_file_atomic

PRECISIONS = ("fp32", "bf16", "int8-weights", "int8-static")


def save_calibration_set(batches: Iterable[dict], dest: str | Path | None = None) -> Path:
    """Save calibration batches (dicts of tensors) to one .npz named by its content hash; returns its path.

    Example:
        >>> save_calibration_set(task.calibration_batches(128, batch_size=8))   # doctest: +SKIP
    """
    arrays = {f"b{i}__{name}": to_numpy(value) for i, batch in enumerate(batches) for name, value in batch.items()}
    if not arrays:
        raise ValueError("no calibration batches given: pass task.calibration_batches(128, batch_size=8)")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    folder = Path(dest) if dest else artifacts_root() / "calibration-sets"
    return write_file_atomic(folder / f"{hashlib.sha256(data).hexdigest()[:12]}.npz", data)


def load_calibration_set(path: str | Path) -> list[dict[str, np.ndarray]]:
    """The batches :func:`save_calibration_set` wrote, in order (no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration set {path} does not exist: save one with "
                                "save_calibration_set(task.calibration_batches(128, batch_size=8))")
    batches: dict[int, dict] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            index, name = key.split("__", 1)
            batches.setdefault(int(index[1:]), {})[name] = data[key]
    return [batches[i] for i in sorted(batches)]


@dataclass(frozen=True)
class OpenVinoConfig:
    """OpenVINO CPU settings.

    Args:
        precision: "fp32"; "bf16" (inference precision hint, only where the CPU plugin has BF16);
            "int8-weights" (NNCF int8 weight compression: int8 weights, float activations);
            "int8-static" (NNCF post-training quantisation: int8 weights and activations, needs ``calibration``).
        calibration: .npz from :func:`save_calibration_set` (int8-static only).
        threads: intra-op threads of the new variant (default: torch's count).
        streams: CPU streams one call's batch is split across (``OpenVinoRunner``'s throughput mode); 1: one stream.
        out_dir: parent folder of the IR (default ``$WORKBENCH_ARTIFACTS/onnx``).
    """

    precision: str = "fp32"
    calibration: str | None = None
    threads: int | None = None
    out_dir: str | None = None
    streams: int = 1

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision {self.precision!r} unknown: use one of {PRECISIONS}")
        if self.precision == "int8-static" and self.calibration is None:
            raise ValueError("precision='int8-static' needs calibration=<.npz>: save one with "
                             "save_calibration_set(task.calibration_batches(128, batch_size=8))")
        if self.precision != "int8-static" and self.calibration is not None:
            raise ValueError(f"calibration is used by precision='int8-static' only, not {self.precision!r}: "
                             "drop it or ask for int8-static")
        if not isinstance(self.streams, int) or self.streams < 1:
            raise ValueError(f"streams={self.streams!r} must be a positive integer (1: one stream per call)")

    @classmethod
    def fp32(cls) -> "OpenVinoConfig":
        return cls()

    @classmethod
    def bf16(cls) -> "OpenVinoConfig":
        return cls(precision="bf16")

    @classmethod
    def bf16_streams(cls, streams: int = 2) -> "OpenVinoConfig":
        """bf16 with each batch split across ``streams`` CPU streams (a throughput arm for few cores)."""
        return cls(precision="bf16", streams=streams)

    @classmethod
    def int8_weights(cls) -> "OpenVinoConfig":
        return cls(precision="int8-weights")

    @classmethod
    def int8_static(cls, calibration: str | Path) -> "OpenVinoConfig":
        return cls(precision="int8-static", calibration=str(calibration))


def _check_available(config: OpenVinoConfig) -> None:
    """A clear 'not available here' before any work: missing library, or bf16 the CPU would not run natively."""
    from workbench.runtime.openvino import bf16_capable, openvino_available

    ok, why = openvino_available()
    if ok and config.precision != "fp32":
        try:
            import nncf  # noqa: F401 - int8 needs it; bf16 does not, but the same install brings both
        except Exception as exc:  # noqa: BLE001
            ok, why = config.precision == "bf16", f"nncf is not importable ({exc}): pip install nncf"
    if ok and config.precision == "bf16":
        ok, why = bf16_capable()
    if not ok:
        raise ValueError(f"OpenVINO {config.precision} not available here: {why}")


def _convert(onnx_path: Path, config: OpenVinoConfig, input_names: list[str]):
    """The OpenVINO model of ``onnx_path`` after the NNCF pass the precision asks for."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    if config.precision == "int8-weights":
        import nncf

        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    if config.precision == "int8-static":
        import nncf

        batches = load_calibration_set(config.calibration)
        missing = set(input_names) - set(batches[0])
        if missing:
            raise ValueError(f"calibration set {config.calibration} lacks inputs {sorted(missing)} the model takes: "
                             "save it from this task's calibration_batches")
        dataset = nncf.Dataset(batches, lambda b: {k: v for k, v in b.items() if k in input_names})
        # TRANSFORMER keeps softmax / layer norm in float and applies SmoothQuant: the recipe NNCF gives for BERT.
        return nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    return model


@register_step("openvino", OpenVinoConfig)
def openvino_step(variant: Variant, config: OpenVinoConfig) -> Variant:
    """An OpenVINO variant of an fp32 ONNX variant (see the module docstring)."""
    import openvino as ov

    from workbench.runtime.openvino import OpenVinoRunner

    onnx_path = require_onnx_file(variant, "openvino", "apply ExportOnnxConfig first: OpenVINO reads the ONNX export")
    require_single_graph(variant, "openvino")  # an encoder-decoder export would convert only its encoder
    if variant.precision != "fp32":
        raise ValueError(f"openvino needs the fp32 ONNX export, got {variant.name!r} ({variant.precision}): "
                         "NNCF quantises it itself (precision='int8-weights' or 'int8-static')")
    _check_available(config)
    input_names = [i.get_any_name() for i in ov.Core().read_model(str(onnx_path)).inputs]
    dest = step_dir(variant, "openvino", config, config.out_dir)
    with publish_dir(dest) as tmp:
        # compress_to_fp16=False: the default would store fp32 weights as fp16, a silent precision change.
        ov.save_model(_convert(onnx_path, config, input_names), str(tmp / "model.xml"), compress_to_fp16=False)
        sums = write_checksums(tmp)
    hint = "bf16" if config.precision == "bf16" else "f32"
    runner = OpenVinoRunner(dest / "model.xml", config.threads or getattr(variant.runner, "threads", None), hint,
                            config.streams)
    size_mb = sum(f.stat().st_size for f in dest.glob("model.*")) / 1e6
    meta = {**{k: variant.meta[k] for k in CARRIED_META if k in variant.meta}, "ir_path": str(dest / "model.xml"),
            "ov_threads": runner.threads, "ov_streams": runner.streams, "ov_precision": config.precision,
            "inference_precision": hint,
            "size_mb": round(size_mb, 3), "sha256": sums.get("model.xml"), "openvino": ov.__version__}
    precision = {"fp32": "fp32", "bf16": "bf16"}.get(config.precision, "int8")
    name = f"ov-{config.precision}" + (f"-streams{config.streams}" if config.streams > 1 else "")
    return dataclasses.replace(variant, name=name, backend="openvino", precision=precision,
                               runner=runner, model=None, artifact_path=None, meta=meta, id="")


__all__ = ["OpenVinoConfig", "openvino_step", "save_calibration_set", "load_calibration_set", "PRECISIONS"]
