"""The CPU encoder arms, by ISA: which precision x runtime arms are worth running on this CPU, how each is built from
the fp32 baseline (a chain of registered steps, common prefixes built once), and the quality measured on that very
variant.

- :func:`cpu_arms`: every arm with its ``skip_reason`` (the ISA or library fact) or its ``notes`` (the ISA path its
  kernels take). ``extended=True`` adds the ONNX Runtime study arms (fp32, O3-fused, dynamic int8 on O3, static int8
  per calibration method) that the quantisation benchmark compares.
- :func:`cpu_context`: the :class:`~workbench.arms.base.ArmContext` of a task at one timing shape.
- :func:`catalogue`: ``(arms, ctx)`` from plain arguments: what the front-ends call, and a recipe for one process per
  arm (``compare(..., isolate=True, recipe=("workbench.arms.cpu", "catalogue", {...}))``).
- :func:`explain_winner`: the winner's kernel-time shares by precision and one sentence on why it won.

The names are the same in ``workbench recommend``, the ISA panel, the step tick boxes and ``benchmarks/quantization.py``.

Example:
    >>> arms, ctx = catalogue("text-classification", batch_size=8, seq_len=128, threads=2)    # doctest: +SKIP
    >>> result = compare(arms, ctx, tolerance=1.0, seconds=1.0)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from workbench.arms.base import Arm, ArmContext, BuiltArm, missing_library

ORT_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def _gate(applies: bool, reason: str, *libraries: str) -> str | None:
    """The skip reason: a missing library first ("not available here: ..."), then the ISA fact, else None (runs)."""
    missing = missing_library(*libraries)
    if missing:
        return f"not available here: {missing}"
    return None if applies else reason


@dataclass(frozen=True)
class StepChain:
    """An arm's build: ``steps`` applied in order to ``ctx.base``; each intermediate variant is kept in ``ctx.cache``
    under (parent id, config), so arms that share a prefix (the ONNX export) build it once. A config with an
    ``out_dir`` field writes under ``ctx.options["out_dir"]`` when that is set."""

    steps: tuple = ()

    def variant(self, ctx: ArmContext):
        from workbench.core import apply

        variant, out_dir = ctx.base, ctx.options.get("out_dir")
        for config in self.steps:
            if out_dir is not None and any(f.name == "out_dir" for f in dataclasses.fields(config)):
                config = dataclasses.replace(config, out_dir=out_dir)
            key = ("step", variant.id, repr(config))
            if key not in ctx.cache:
                ctx.cache[key] = apply(variant, config)
            variant = ctx.cache[key]
        return variant

    def __call__(self, ctx: ArmContext) -> BuiltArm:
        return built_variant(self.variant(ctx), ctx)


def built_variant(variant, ctx: ArmContext) -> BuiltArm:
    """A variant as a built arm: ``call`` runs it on ``ctx.inputs``; ``quality`` evaluates THAT variant on the split
    ``ctx.options["split"]`` (default validation, else test), ``report_quality`` on ``options["report_split"]``."""
    task, limit = ctx.task, ctx.options.get("eval_limit")

    def evaluate(split):
        def run():
            from workbench.runtime.compiled_shapes import reuse_compiled_shapes

            # a compiled arm evaluates in the shapes it compiled: the split's many batch shapes would each compile
            with reuse_compiled_shapes():
                try:
                    return task.evaluate(variant, split=split, limit=limit)
                except KeyError:
                    if split != "validation":
                        raise
                    return task.evaluate(variant, split="test", limit=limit)   # a task without a validation split
        return run

    report = ctx.options.get("report_split")
    meta = {"compile_seconds": getattr(variant, "meta", {}).get("compile_seconds")}
    return BuiltArm(call=lambda: variant(ctx.inputs), variant=variant,
                    quality=evaluate(ctx.options.get("split", "validation")) if task is not None else None,
                    report_quality=evaluate(report) if task is not None and report else None, meta=meta)


@dataclass(frozen=True)
class OrtStatic:
    """Build of an ORT static int8 arm: calibrate the ONNX export with ``method`` on ``ctx.options
    ["calibration_batches"]`` (ranges saved), then quantise from those ranges (the two phases of ``steps.quantize``)."""

    method: str

    def __call__(self, ctx: ArmContext) -> BuiltArm:
        from workbench.core import apply
        from workbench.steps import ExportOnnxConfig, QuantizeStaticConfig, calibrate

        batches = ctx.options.get("calibration_batches")
        if not batches:
            raise ValueError("ORT static int8 needs ctx.options['calibration_batches'] (task.calibration_batches(...))")
        onnx = StepChain((ExportOnnxConfig(),)).variant(ctx)
        out_dir = ctx.options.get("out_dir")
        ranges = calibrate(onnx, batches, method=self.method, out_dir=out_dir)
        ctx.log(f"  calibrated {self.method} on {ranges.n_examples} examples")
        return built_variant(apply(onnx, QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=out_dir)), ctx)


def _arm(name: str, kind: str, steps: tuple, skip_reason: str | None, notes: str, **kw) -> Arm:
    return Arm(name, kind, StepChain(steps), skip_reason, notes=notes, steps=steps, **kw)


def cpu_arms(isa: dict | None = None, calibration: str | None = None, extended: bool = False) -> list[Arm]:
    """The CPU arms for ``isa`` (this CPU's ``runtime.cpu.isa_summary`` when None), each runnable here or with the
    reason it is not.

    Args:
        calibration: a calibration set (.npz, ``steps.openvino.save_calibration_set``) for the static int8 arms;
            without it they are listed with "needs calibration data".
        extended: add the ORT study arms (``ort-fp32``, ``ort-fp32-o3``, ``ort-int8-dynamic-o3``,
            ``ort-int8-static-<method>``; the static ones read ``ctx.options["calibration_batches"]``).

    Example:
        >>> [a.name for a in cpu_arms(isa_summary(["avx2"]), calibration="calib.npz") if not a.applies]  # doctest: +SKIP
        ['torch-bf16', 'torch-compile-bf16', 'ov-bf16']
    """
    from workbench.runtime.cpu import isa_summary, native_bf16, native_int8
    from workbench.steps.compile import CompileConfig
    from workbench.steps.cpu_precision import CpuPrecisionConfig
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.steps.openvino import OpenVinoConfig
    from workbench.steps.pt2e import Pt2eConfig
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    isa = isa_summary() if isa is None else isa
    int8_ok, int8_why = native_int8(isa)
    bf16_ok, bf16_why = native_bf16(isa)
    full_int8 = bool(isa.get("vnni") or isa.get("amx_int8"))   # else 7-bit: u8 x s8 could overflow (vpmaddubsw)
    ort_preset, preset_why = ((QuantizeDynamicConfig.per_channel_int8(), "per-channel 8-bit weights") if full_int8
                              else (QuantizeDynamicConfig.avx2(), "avx2 preset: per-channel 7-bit weights"))
    vector = "AVX-512" if isa.get("avx512") else "AVX2" if isa.get("avx2") else None
    compile_why = (f"inductor fuses elementwise ops into {vector} C++ kernels; GEMMs stay oneDNN/MKL" if vector
                   else "no AVX2: inductor's C++ kernels would be scalar")
    no_calib = "needs calibration data: pass calibration=save_calibration_set(task.calibration_batches(...))"
    calib_ok = calibration is not None
    ov_kernels = "OpenVINO CPU plugin (oneDNN brgemm kernels for this ISA)"
    onnx = ExportOnnxConfig()
    arms = [
        _arm("torch-fp32", "baseline", (), None, "baseline: eager fp32", baseline=True),
        _arm("torch-int8-dynamic", "int8", (QuantizeDynamicConfig(),), _gate(int8_ok, int8_why), int8_why),
        _arm("ort-int8-dynamic", "int8", (onnx, ort_preset), _gate(int8_ok, int8_why, "onnxruntime"),
             f"{int8_why}; {preset_why}"),
        _arm("torch-bf16", "bf16", (CpuPrecisionConfig(),), _gate(bf16_ok, bf16_why), bf16_why),
        _arm("torch-compile-fp32", "compile", (CompileConfig(),), _gate(vector is not None, compile_why), compile_why,
             twin="torch-fp32"),
        _arm("torch-compile-bf16", "compile", (CpuPrecisionConfig(), CompileConfig()),
             _gate(bf16_ok and vector is not None, bf16_why if not bf16_ok else compile_why),
             f"{bf16_why}; {compile_why}", twin="torch-bf16"),
        _arm("torch-compile-bf16-frozen", "compile", (CpuPrecisionConfig(), CompileConfig.frozen()),
             _gate(bf16_ok and vector is not None, bf16_why if not bf16_ok else compile_why),
             f"{bf16_why}; inductor freezing: bf16 weights folded and pre-packed for oneDNN GEMMs at compile time",
             twin="torch-bf16"),
        _arm("torch-int8-pt2e-dynamic", "compile", (Pt2eConfig(reduce_range=not full_int8),),
             _gate(int8_ok, int8_why, "torchao"), f"{int8_why}; PT2E x86 inductor quantizer, oneDNN qlinear",
             twin="torch-int8-dynamic"),
        _arm("torch-int8-pt2e-static", "compile",
             (Pt2eConfig(mode="static", calibration=str(calibration), reduce_range=not full_int8),) if calib_ok else (),
             _gate(int8_ok and calib_ok, int8_why if calib_ok else no_calib, "torchao"),
             f"{int8_why}; PT2E static, calibrated"),
        _arm("ov-fp32", "openvino", (onnx, OpenVinoConfig()), _gate(True, "", "openvino"), ov_kernels),
        _arm("ov-bf16", "openvino", (onnx, OpenVinoConfig.bf16()), _gate(bf16_ok, bf16_why, "openvino"),
             f"{bf16_why}; {ov_kernels}"),
        _arm("ov-int8-weights", "openvino", (onnx, OpenVinoConfig.int8_weights()),
             _gate(True, "", "openvino", "nncf"), "NNCF int8 weights, float activations: smaller, GEMMs decompress"),
        _arm("ov-int8-static", "openvino", (onnx, OpenVinoConfig.int8_static(calibration)) if calib_ok else (),
             _gate(int8_ok and calib_ok, int8_why if calib_ok else no_calib, "openvino", "nncf"),
             f"{int8_why}; NNCF static int8 (SmoothQuant)"),
    ]
    if extended:
        # Autotuning times every GEMM's candidate kernels (~30 s per shape on 2 cores): a study arm, not a screen one.
        arms.append(_arm("torch-compile-bf16-autotune", "compile",
                         (CpuPrecisionConfig(), CompileConfig(mode="max-autotune-no-cudagraphs", freezing=True)),
                         _gate(bf16_ok and vector is not None, bf16_why if not bf16_ok else compile_why),
                         f"{bf16_why}; frozen, max-autotune: inductor times its C++ GEMM templates (AMX micro-kernels "
                         "where the CPU has them) against oneDNN per GEMM shape", twin="torch-bf16"))
        # Throughput arms: each batch split across 2 streams of half the cores (ov-bf16-streams was the AMX pick).
        split = "each batch split across 2 streams of half the cores, each compiled for its block's shape (batch 1 " \
                "runs on one stream)"
        arms.append(_arm("ov-bf16-streams", "openvino", (onnx, OpenVinoConfig.bf16_streams(2)),
                         _gate(bf16_ok, bf16_why, "openvino"), f"{bf16_why}; {ov_kernels}; {split}"))
        arms.append(_arm("ov-fp32-streams", "openvino", (onnx, OpenVinoConfig(streams=2)),
                         _gate(True, "", "openvino"), f"{ov_kernels}; {split}"))
        arms.append(_arm("ov-int8-static-streams", "openvino",
                         (onnx, dataclasses.replace(OpenVinoConfig.int8_static(calibration), streams=2))
                         if calib_ok else (),
                         _gate(int8_ok and calib_ok, int8_why if calib_ok else no_calib, "openvino", "nncf"),
                         f"{int8_why}; NNCF static int8 (SmoothQuant); {split}"))
        arms += _ort_study_arms(int8_ok, int8_why)
    return arms


def _ort_study_arms(int8_ok: bool, int8_why: str) -> list[Arm]:
    """ONNX Runtime fp32 / fused fp32 / dynamic int8 on the fused graph / static int8 per calibration method."""
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.steps.optimize import OptimizeConfig
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    onnx, o3 = ExportOnnxConfig(), OptimizeConfig(level="O3")
    mlas = "ONNX Runtime CPU EP (MLAS kernels chosen from CPUID)"
    ort = missing_library("onnxruntime")
    ort = f"not available here: {ort}" if ort else None
    arms = [_arm("ort-fp32", "ort", (onnx,), ort, mlas),
            _arm("ort-fp32-o3", "ort", (onnx, o3), ort, f"{mlas}; O3 fusions (attention, GELU, layer norm)"),
            _arm("ort-int8-dynamic-o3", "int8", (onnx, o3, QuantizeDynamicConfig(per_channel=True, reduce_range=True)),
                 ort or _gate(int8_ok, int8_why), f"{int8_why}; dynamic int8 on the O3-fused graph")]
    for method in ORT_CALIBRATION_METHODS:
        arms.append(Arm(f"ort-int8-static-{method}", "int8", OrtStatic(method), ort or _gate(int8_ok, int8_why),
                        notes=f"{int8_why}; QDQ static int8, {method} calibration"))
    return arms


def calibration_set(task, n_examples: int, folder) -> tuple[Any, str]:
    """The task's calibration split saved for the static int8 arms: (path, "") or (None, why) without one."""
    from workbench.steps.openvino import save_calibration_set

    try:
        return save_calibration_set(task.calibration_batches(n_examples, batch_size=8), folder), ""
    except NotImplementedError as exc:
        return None, str(exc)


def cpu_context(task, batch_size: int, seq_len: int, threads: int | None = None, eval_limit: int | None = None,
                out_dir: str | None = None, report_split: str | None = None, calibration_batches: list | None = None,
                log=None, base=None) -> ArmContext:
    """The context of the CPU arms of ``task``: the fp32 baseline at ``threads`` (holding the timing batch as its
    ``example_inputs``, which compile and PT2E warm up on), a ``batch_size x seq_len`` batch of real data, quality on
    validation (``report_split``: also on that split, for the reported figure), ORT/OpenVINO files under
    ``out_dir``."""
    inputs = task.example_inputs(batch_size=batch_size, seq_len=seq_len) if task is not None else None
    return context_for(task.baseline("cpu") if base is None else base, inputs, task, threads, eval_limit, out_dir,
                       report_split, calibration_batches, log)


def context_for(base, inputs, task=None, threads=None, eval_limit=None, out_dir=None, report_split=None,
                calibration_batches=None, log=None, device: str = "cpu") -> ArmContext:
    """:func:`cpu_context` for a given baseline variant and timing batch (e.g. a model that is not a task's), on
    ``device`` (the GPU arms' context is the same one on cuda)."""
    if threads is not None:
        from workbench.runtime import with_threads

        base = with_threads(base, threads)
    base = dataclasses.replace(base, meta={**base.meta, "example_inputs": inputs})
    options = {"eval_limit": eval_limit, "out_dir": out_dir, "report_split": report_split,
               "calibration_batches": calibration_batches}
    return ArmContext(base=base, inputs=inputs, task=task, threads=threads, device=device, cache={},
                      log=log or (lambda message: None), options=options)


def catalogue(task: str = "text-classification", batch_size: int = 8, seq_len: int = 128, threads: int | None = None,
              eval_limit: int | None = None, calib_examples: int = 0, extended: bool = False,
              out_dir: str | None = None, report_split: str | None = None, isa: dict | None = None,
              log=None) -> tuple:
    """``(arms, ctx)`` for a built-in task kind from plain arguments (they pickle: a recipe for one process per arm;
    ``log`` excepted).

    ``calib_examples``: examples saved as the static int8 arms' calibration set (0: those arms say they need one).
    """
    from workbench.tasks import get_task
    from workbench.util.files import artifacts_root

    task_obj = get_task(task)
    calibration, batches = None, None
    if calib_examples:
        calibration, _why = calibration_set(task_obj, calib_examples, out_dir or artifacts_root() / "calibration-sets")
        batches = list(task_obj.calibration_batches(calib_examples, batch_size=8)) if extended else None
    ctx = cpu_context(task_obj, batch_size, seq_len, threads, eval_limit, out_dir, report_split, batches, log)
    return cpu_arms(isa, calibration and str(calibration), extended), ctx


def explain_winner(name: str, variant, inputs, speedups: dict, isa: dict, cpu: str, not_run: dict,
                   runs: int = 3) -> tuple[str, dict, dict]:
    """(one sentence on why ``name`` won, its top kernels' time shares, those shares by precision) from the
    winner's kernel profile at the timing shape; ``speedups``: {"batch 8": 3.1, ...}."""
    from workbench.measure.isa import precision_time_shares, won_because
    from workbench.runtime.profile import kernel_profile

    profile = kernel_profile(variant, inputs, runs=runs) if variant is not None else {}
    shares = precision_time_shares(profile) if profile else None
    return won_because(name, speedups, {"cpu": cpu, **isa}, shares, not_run), dict(list(profile.items())[:6]), shares


__all__ = ["cpu_arms", "cpu_context", "context_for", "catalogue", "calibration_set", "explain_winner", "StepChain",
           "OrtStatic", "built_variant", "ORT_CALIBRATION_METHODS"]
