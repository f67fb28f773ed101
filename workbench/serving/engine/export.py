"""``export_engine``: an engine bundle for a causal-LM variant, what a serving team deploys on vLLM.

Layout (written in a temp folder and swapped into place only when complete, :func:`workbench.util.files.publish_dir`):

```
bundle/
  checkpoint/               HF directory vLLM loads (config.json, model.safetensors, tokenizer, checksums.json)
  engine_args.json          the engine arguments (search winner when `workbench load --search` wrote one)
  triton/<name>/config.pbtxt, triton/<name>/1/model.json    Triton's vLLM backend (GPU serving form)
  MODEL_CARD.md
  manifest.json             facts + every file's sha256 and size (`workbench verify` checks them)
```

What vLLM cannot load (architecture, precision, int4 layout) is refused before anything is written.
"""
from __future__ import annotations

import json
from pathlib import Path

from workbench.serving.engine.engine_args import EngineArgs, triton_config_pbtxt

ENGINE = "vllm"
CHECKPOINT = "checkpoint"
TRITON_MOUNT = "/models/checkpoint"   # where model.json expects the checkpoint folder inside the Triton container


def _source_precision(variant) -> tuple[str, int | None]:
    meta = variant.meta or {}
    if variant.precision in ("int8", "int4"):
        return variant.precision, meta.get("group_size")
    return "bf16" if variant.precision in ("fp32", "bf16", "fp16") else variant.precision, None


def check_exportable(variant) -> tuple[str, int | None]:
    """(precision written, int4 group size); EngineUnsupported / ValueError with the fix for what vLLM cannot load."""
    from workbench.runtime import require_torch_module
    from workbench.serving.engine.checkpoint import linear_shapes
    from workbench.serving.engine.support import check_engine_loadable

    module = require_torch_module(variant, "export --engine vllm", "export the torch baseline or a WeightOnlyConfig "
                                  "variant (vLLM loads Hugging Face weights, not ONNX)")
    config = getattr(module, "config", None)
    if config is None:
        raise ValueError(f"{variant.name!r} has no transformers config: vLLM serves Hugging Face causal LMs")
    precision, group = _source_precision(variant)
    check_engine_loadable(config, variant.precision, group, linear_shapes(module) if precision != "bf16" else [])
    return precision, group


def export_engine(variant, task, to: str | Path | None = None, name: str | None = None,
                  engine_args: EngineArgs | None = None, overwrite: bool = False, extra_facts: dict | None = None) -> Path:
    """Write the engine bundle of ``variant`` (a torch causal LM: float -> bf16, or weight-only int8 / int4).

    Args:
        variant: the torch variant (``task.baseline()`` or ``apply(..., WeightOnlyConfig.int8())``).
        task: its causal-LM task (the tokenizer comes from ``task.model_dir``).
        to: bundle folder (default ``artifacts/bundles/<name>``); must not exist unless ``overwrite``.
        engine_args: vLLM arguments (default :class:`EngineArgs`).
        extra_facts: more manifest facts (the benchmark's measured figures, a search result).

    Example:
        >>> path = export_engine(apply(task.baseline(), WeightOnlyConfig.int8()), task)   # doctest: +SKIP
    """
    from workbench.measure.environment import environment_fingerprint
    from workbench.runtime import torch_module
    from workbench.serving.bundle.export import write_manifest
    from workbench.serving.engine.card import engine_card
    from workbench.serving.engine.checkpoint import write_engine_checkpoint
    from workbench.util.files import artifacts_root, publish_dir, write_checksums, write_file_atomic

    precision, group = check_exportable(variant)
    name = name or f"{task.name}-{variant.name}-vllm".replace("_", "-")
    dest = Path(to) if to else artifacts_root() / "bundles" / name
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists: pass overwrite=True (--overwrite) or another --to")
    args = fit_context(engine_args, torch_module(variant).config)
    tokenizer_dir = getattr(task, "model_dir", None)
    with publish_dir(dest) as tmp:
        ckpt = write_engine_checkpoint(torch_module(variant), tmp / CHECKPOINT, precision, group, tokenizer_dir)
        write_checksums(tmp / CHECKPOINT)
        write_file_atomic(tmp / "engine_args.json", json.dumps(args.as_dict(), indent=2) + "\n")
        triton = tmp / "triton" / name
        write_file_atomic(triton / "config.pbtxt", triton_config_pbtxt(name))
        write_file_atomic(triton / "1" / "model.json", json.dumps(args.model_json(TRITON_MOUNT), indent=2) + "\n")
        facts = {"name": name, "kind": "engine", "engine": ENGINE, "task": getattr(task, "name", None),
                 "variant": {"variant": variant.name, "variant_id": variant.id, "precision": variant.precision,
                             "backend": variant.backend},
                 "lineage": [{"step": step, "config": config} for step, config in variant.lineage],
                 "checkpoint": {**ckpt, "folder": CHECKPOINT}, "engine_args": args.as_dict(),
                 "environment": environment_fingerprint(), **(extra_facts or {})}
        write_file_atomic(tmp / "MODEL_CARD.md", engine_card(facts))
        write_manifest(tmp, facts)
    return dest


def fit_context(engine_args: EngineArgs | None, hf_config) -> EngineArgs:
    """The default arguments with ``max_model_len`` capped at the model's positions; given arguments that ask for
    more context than the model has are refused (vLLM would refuse them at start-up, after a minute)."""
    import dataclasses

    positions = getattr(hf_config, "max_position_embeddings", None) or getattr(hf_config, "n_positions", None)
    if engine_args is None:
        default = EngineArgs()
        return dataclasses.replace(default, max_model_len=min(default.max_model_len, positions or 10**9))
    if positions and engine_args.max_model_len > positions:
        raise ValueError(f"max_model_len {engine_args.max_model_len} exceeds the model's {positions} positions: "
                         f"use at most {positions}")
    return engine_args


def is_engine_bundle(manifest: dict) -> bool:
    return manifest.get("kind") == "engine"


def checked_engine_manifest(bundle: Path) -> dict:
    """The manifest of an engine bundle whose files still match their checksums; a clear error otherwise."""
    from workbench.serving.bundle.verify import check_files, load_manifest

    manifest = load_manifest(bundle)
    if not is_engine_bundle(manifest):
        raise ValueError(f"{bundle} is not an engine bundle: write one with `workbench export --engine vllm`")
    problems = check_files(bundle, manifest)
    if problems:
        raise ValueError(f"{bundle} changed since export ({problems[0]}): re-export it")
    return manifest


def rewrite_engine_facts(bundle: Path, updates: dict, engine_args: EngineArgs | None = None) -> dict:
    """Put measured facts (load rows, the searched winner's arguments) into an engine bundle: engine_args.json,
    Triton's model.json, the card and the manifest, each file replaced atomically; the manifest last."""
    from workbench.serving.bundle.export import write_manifest
    from workbench.serving.engine.card import engine_card
    from workbench.serving.bundle.verify import check_files, load_manifest
    from workbench.util.files import write_file_atomic

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    problems = check_files(bundle, manifest)
    if problems:
        raise ValueError(f"{bundle} changed since export ({problems[0]}): re-export it before writing into it")
    facts = {k: v for k, v in manifest.items() if k not in ("files", "format", "workbench_version", "created_at")}
    facts.update(updates)
    if engine_args is not None:
        facts["engine_args"] = engine_args.as_dict()
        write_file_atomic(bundle / "engine_args.json", json.dumps(engine_args.as_dict(), indent=2) + "\n")
        write_file_atomic(bundle / "triton" / facts["name"] / "1" / "model.json",
                          json.dumps(engine_args.model_json(TRITON_MOUNT), indent=2) + "\n")
    write_file_atomic(bundle / "MODEL_CARD.md", engine_card(facts))
    write_manifest(bundle, facts)   # lists every file but itself, so the new card's hash is in it
    return facts




WEIGHT_ONLY_SPECS = {"int8-wo": (8, None), "int4-wo": (4, 128), "int4-wo-g32": (4, 32)}


def engine_variant(task, spec: str, rows=None, device: str = "cpu", base=None):
    """The variant ``workbench export --engine vllm --variant SPEC`` ships: ``baseline`` (float, written bf16),
    ``int8-wo`` / ``int4-wo`` / ``int4-wo-g32`` (the workbench's weight-only step on the baseline), or a variant id
    from the study's results. ``base``: the float variant those specs start from instead of ``task.baseline(device)``
    (a distilled student of the task's model)."""
    from workbench.core import apply
    from workbench.steps.weight_only import WeightOnlyConfig

    if spec == "baseline" or spec in WEIGHT_ONLY_SPECS:
        start = task.baseline(device) if base is None else base
        if spec == "baseline":
            return start
        bits, group = WEIGHT_ONLY_SPECS[spec]
        return apply(start, WeightOnlyConfig(bits=bits, group_size=group or 128))
    if spec == "onnx":
        raise ValueError("vLLM loads Hugging Face weights, not ONNX: --variant baseline, int8-wo, int4-wo or a torch "
                         "variant id")
    from workbench.serving.bundle.export import find_variant_row, variant_from_row

    return variant_from_row(task, find_variant_row(rows or [], spec))


__all__ = ["export_engine", "check_exportable", "is_engine_bundle", "rewrite_engine_facts", "engine_variant",
           "ENGINE", "CHECKPOINT", "WEIGHT_ONLY_SPECS"]
