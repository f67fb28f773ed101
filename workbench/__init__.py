"""Workbench: measure inference optimisations (quantisation, ONNX, distillation, batching, speculative decoding)
and hand the winner to a serving team.

The public API is imported lazily so that ``import workbench`` stays light (no onnxruntime, transformers,
plotly or ipywidgets): ``_LAZY`` maps each public name to the module that provides it, imported on first use.

Example:
    >>> import workbench as wb                                  # doctest: +SKIP
    >>> task = wb.get_task("text-classification")
    >>> table = wb.ResultsTable.for_study("demo")
    >>> table.append(wb.measure_variant(task, task.baseline()))
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    # the spine: variants, steps, tasks, results
    "Variant": "workbench.core", "apply": "workbench.core", "register_step": "workbench.core",
    "get_task": "workbench.tasks", "from_module": "workbench.tasks", "Task": "workbench.tasks",
    "ResultsTable": "workbench.results", "pareto_front": "workbench.results",
    "Text2TextTask": "workbench.tasks.text2text", "measure_text2text_generation": "workbench.measure.generation",
    "export_seq2seq": "workbench.tasks.seq2seq_onnx", "check_fits": "workbench.tasks.model_memory",
    "shape_of": "workbench.runtime.families",
    # optimisation steps (importing a config's module registers its step)
    "ExportOnnxConfig": "workbench.steps", "OptimizeConfig": "workbench.steps",
    "QuantizeDynamicConfig": "workbench.steps", "QuantizeStaticConfig": "workbench.steps",
    "calibrate": "workbench.steps", "DistillConfig": "workbench.steps.distill",
    "CpuPrecisionConfig": "workbench.steps.cpu_precision", "CompileConfig": "workbench.steps.compile",
    "OpenVinoConfig": "workbench.steps.openvino", "save_calibration_set": "workbench.steps.openvino",
    "Pt2eConfig": "workbench.steps.pt2e",
    "WeightOnlyConfig": "workbench.steps.weight_only", "apply_weight_only": "workbench.steps.weight_only",
    "WeightOnlyOrtConfig": "workbench.steps.weight_only_onnx", "KvCacheQuantConfig": "workbench.steps.kv_cache",
    # measurement
    "measure_variant": "workbench.measure", "measure_latency": "workbench.measure",
    "environment_fingerprint": "workbench.measure", "sweep_batching": "workbench.measure.batching",
    "slo_point": "workbench.measure.slo", "add_costs": "workbench.measure.cost",
    "rouge_l": "workbench.tasks.text_metrics", "chrf": "workbench.tasks.text_metrics",
    "request_metrics": "workbench.measure.request_metrics", "prefix_cache_trial": "workbench.measure.prefix_cache",
    "load_api_prices": "workbench.measure.cost",
    # the arm layer: arms compared side by side, the winner confirmed on fresh timings
    "Arm": "workbench.arms.base", "BuiltArm": "workbench.arms.base", "ArmContext": "workbench.arms.base",
    "compare": "workbench.arms.runner", "cpu_arms": "workbench.arms.cpu", "within_tolerance": "workbench.arms.eligibility",
    # speculative decoding
    "speculative_generate": "workbench.decoding.speculative",
    "FastDecoder": "workbench.decoding.fast_loop", "DecodeResult": "workbench.decoding.fast_loop",
    "FastSpeculativeDecoder": "workbench.decoding.fast_speculative",
    "ModelDrafter": "workbench.decoding.drafters", "PromptLookupDrafter": "workbench.decoding.drafters",
    # serving hand-off
    "export_bundle": "workbench.serving.bundle.export", "verify_bundle": "workbench.serving.bundle.verify",
    "serve_check": "workbench.serving.bundle.serve_check", "open_loop": "workbench.serving.load.open_loop",
    "open_loop_stream": "workbench.serving.load.stream", "search_config": "workbench.serving.load.config_search",
    "ServingConfig": "workbench.serving.bundle.serving_config",
    # what people look at
    "WorkbenchPanel": "workbench.ui.panel", "IsaPanel": "workbench.ui.isa_panel",
    "load_figure": "workbench.ui.plots_load", "LlmPanel": "workbench.ui.llm_panel", "build_report": "workbench.ui.report",
    # from a model to a serving decision within a time budget
    "optimize": "workbench.optimize", "OptimizeResult": "workbench.optimize",
    # studies across machines
    "run_study": "workbench.cluster", "load_spec": "workbench.cluster", "cheapest_meeting_slo": "workbench.cluster",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
