"""Serving bundle: the validated ONNX model as a Triton model repository, a model card and a checksummed manifest.

Layout of ``export_bundle(...)``'s folder::

    manifest.json                       every file + sha256, lineage with configs, environment, metrics, versions
    MODEL_CARD.md                       intended use, lineage, accuracy (CI), latency/throughput, cost, limitations
    model_repository/<name>/config.pbtxt          inputs/outputs, max_batch_size, dynamic_batching, instance_group
    model_repository/<name>/1/model.onnx          the ONNX file (validated against its torch parent at export)
    reference/inputs.npz, reference/outputs.npz   real inputs and the variant's outputs, for verify / serve-check
    results.jsonl                                 the measured rows the bundle's numbers come from
    tokenizer/                                    the task's tokenizer, when it has one

The batching plan comes from the measured sweep: ``max_batch_size`` is the largest batch meeting the SLO (or the
largest that ran), the preferred sizes are the knee and that batch, and the queue delay is the latency headroom
the SLO leaves at ``max_batch_size`` (without an SLO: one batch-1 service time). Everything is written into a
temporary folder beside the destination and renamed into place at the end: never a half-written bundle, and an
existing bundle is only replaced when asked (and only by a complete one).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from workbench.measure.batching import sweep_rows
from workbench.measure.slo import knee, slo_point
from workbench.runtime import onnx_file, require_torch_module
from workbench.util.files import artifacts_root, publish_dir, sha256

BUNDLE_FORMAT = "workbench-bundle/1"
REPOSITORY = "model_repository"
MAX_QUEUE_DELAY_US = 100_000  # never hold a request more than 100 ms for batching


class ExportError(ValueError):
    """The bundle cannot be made from these inputs (the message says what to change); nothing was written."""


def export_bundle(variant, results, to: str | Path | None = None, task=None, slo_ms: float | None = None,
                  percentile: str = "p99", name: str | None = None, instance: str = "c7i.large",
                  utilisation: float = 1.0, n_reference: int = 4, overwrite: bool = False) -> Path:
    """Write the serving bundle of ``variant`` (its ONNX form) to ``to`` and return that folder.

    Args:
        variant: the chosen Variant; a torch variant is exported with the validated ONNX step first.
        results: ResultsTable / rows holding this variant's batching sweep (``workbench sweep``) and, ideally,
            its quality row (``workbench measure``).
        to: destination folder (default ``artifacts/bundles/<name>``); must not exist unless ``overwrite``.
        task: the Task (reference inputs, tokenizer, eval facts); default: ``variant.meta["example_inputs"]``.
        slo_ms / percentile: latency objective that sets max_batch_size and the queue delay.
        name: Triton model name (default ``<task>-<variant>``).
        instance / utilisation: price-table instance and busy share for the card's cost lines.
        n_reference: reference examples saved for verify / serve-check.

    Example:
        >>> bundle = export_bundle(int8, table, task=task, slo_ms=50, to="artifacts/bundles/clf")  # doctest: +SKIP
        >>> verify_bundle(bundle)
    """
    from workbench.serving.model_card import model_card
    from workbench.measure.environment import environment_fingerprint
    from workbench.serving.triton_config import render_config, tensor_specs_from_onnx

    rows = list(results)
    name = _model_name(name or f"{variant.task}-{variant.name}")
    dest = Path(to) if to else artifacts_root() / "bundles" / name
    if dest.exists() and not overwrite:
        raise ExportError(f"{dest} already exists: choose another --to or pass overwrite=True (--overwrite)")
    plan = batching_plan(rows, variant.id, slo_ms, percentile)  # before any work: an infeasible SLO stops here
    onnx_variant = _onnx_form(variant)
    onnx_path = Path(onnx_variant.artifact_path)
    inputs, outputs = tensor_specs_from_onnx(onnx_path)
    threads = onnx_variant.meta.get("ort_threads")
    config_text = render_config(name, inputs, outputs, plan["max_batch_size"], plan["preferred_batch_sizes"],
                                plan["max_queue_delay_us"], "KIND_GPU" if variant.device == "cuda" else "KIND_CPU",
                                threads=threads)
    ref_in, ref_out = reference_io(onnx_variant, task, n_reference, plan["seq_len"])
    batch_noise = batch_composition_noise(onnx_variant, ref_in, ref_out)
    quality = _quality_row(rows, variant.id)
    costs = _cost_lines(plan["rows"], instance, utilisation)
    env = environment_fingerprint()
    with publish_dir(dest) as tmp:  # the bundle appears complete or not at all; an old one is kept until then
        model_dir = tmp / REPOSITORY / name
        (model_dir / "1").mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(config_text)
        for f in [onnx_path] + sorted(onnx_path.parent.glob(onnx_path.name + "*.data")):
            shutil.copy2(f, model_dir / "1" / f.name)
        (tmp / "reference").mkdir()
        np.savez(tmp / "reference" / "inputs.npz", **ref_in)
        np.savez(tmp / "reference" / "outputs.npz", **ref_out)
        if task is not None and getattr(task, "tokenizer", None) is not None:
            task.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        with open(tmp / "results.jsonl", "w") as f:
            for row in ([quality] if quality else []) + plan["rows"]:
                f.write(json.dumps(row, default=str) + "\n")
        facts = {"name": name, "task": variant.task, "variant": variant.describe(), "served": onnx_variant.describe(),
                 "lineage": [{"step": s, "config": c} for s, c in onnx_variant.lineage],
                 "export": onnx_variant.meta.get("export"), "environment": env, "quality": quality,
                 "batching": {k: v for k, v in plan.items() if k != "rows"}, "cost": costs,
                 "inputs": [s.__dict__ for s in inputs], "outputs": [s.__dict__ for s in outputs],
                 "reference": {"n": n_reference, "atol": 1e-4, "rtol": 1e-3, "batch_noise": batch_noise,
                               "serve_atol": max(1e-4, 2 * batch_noise)}}
        (tmp / "MODEL_CARD.md").write_text(model_card(facts, plan["rows"]))
        write_manifest(tmp, facts)
    return dest


def batching_plan(rows, variant_id: str, slo_ms: float | None, percentile: str = "p99") -> dict:
    """max_batch_size, preferred batch sizes and queue delay from the measured sweep (see module doc)."""
    points = sweep_rows(rows, variant_id)
    if not points:
        raise ExportError(f"no batching sweep of variant {variant_id} in the results: run `workbench sweep` "
                          "(or sweep_batching) for this variant first; the Triton batching plan is derived from it")
    seq_len = max(r.get("seq_len") or 0 for r in points)  # the longest swept input: the conservative line
    out_len = max((r.get("output_len") or 0 for r in points if r.get("seq_len") == seq_len), default=0)
    line = [r for r in points if r.get("seq_len") == seq_len and (r.get("output_len") or 0) == out_len]
    plan = {"seq_len": seq_len or None, "percentile": percentile, "slo_ms": slo_ms, "rows": line}
    if slo_ms is not None:
        slo = slo_point(line, slo_ms, percentile)
        if not slo.feasible:
            raise ExportError(f"{slo.reason} (nothing was written)")
        top = slo.batch_size
        delay_ms = slo_ms - slo.latency_ms
        plan["slo"] = slo.as_dict()
    else:
        top = max(r["batch_size"] for r in line if not r.get("capped")) if any(not r.get("capped") for r in line) \
            else line[0]["batch_size"]
        delay_ms = line[0]["latency_p50_ms"]
    k = knee([r for r in line if r["batch_size"] <= top])
    plan.update(max_batch_size=int(top), preferred_batch_sizes=sorted({int(k["batch_size"]), int(top)}),
                max_queue_delay_us=int(min(max(delay_ms, 0.0) * 1000, MAX_QUEUE_DELAY_US)))
    return plan


def reference_io(onnx_variant, task, n: int, seq_len: int | None) -> tuple[dict, dict]:
    """Real inputs (all graph inputs, as fed to ORT) and the served variant's outputs on them."""
    runner = onnx_variant.runner
    if task is not None:
        raw = task.example_inputs(n, seq_len)
    elif "example_inputs" in onnx_variant.meta:
        raw = onnx_variant.meta["example_inputs"]
    else:
        raise ExportError("reference inputs need the task (task=...) or variant.meta['example_inputs']")
    feed = runner.feed(raw)
    outs = runner.run(feed)
    return feed, {k: np.asarray(v) for k, v in outs.items()}


def batch_composition_noise(onnx_variant, inputs: dict, outputs: dict) -> float:
    """Largest |output alone - output in the reference batch| over the reference examples.

    ~1e-6 for float models. Dynamically quantised ones pick activation scales per batch, so an example's output
    depends on its batch mates; a served request (batched by Triton with others) is compared with this margin.
    """
    worst = 0.0
    for i in range(len(next(iter(inputs.values())))):
        alone = onnx_variant.runner.run({k: v[i:i + 1] for k, v in inputs.items()})
        worst = max(worst, max(float(np.abs(alone[k] - outputs[k][i:i + 1]).max(initial=0.0)) for k in outputs))
    return worst


def write_manifest(folder: Path, facts: dict) -> dict:
    """manifest.json listing every other file with its sha256 and size, plus ``facts``."""
    from workbench import __version__

    files = {p.relative_to(folder).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    manifest = {"format": BUNDLE_FORMAT, "workbench_version": __version__,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **facts, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def variant_from_row(task, row: dict):
    """Rebuild the Variant a results row describes by replaying its lineage (step configs) on the task's baseline.

    The same recipe gives the same lineage id, which is checked: a row from another model or task fails clearly.
    """
    import workbench.steps as steps
    from workbench.core import apply, config_from_dict

    steps.discover()
    lineage = row.get("lineage") or []
    device = row.get("device") or "cpu"
    variant = task.baseline(device, "fp32" if lineage else row.get("precision") or "fp32")
    for _step, config in lineage:
        variant = apply(variant, config_from_dict(config))
    if row.get("variant_id") and variant.id != row["variant_id"]:
        raise ExportError(f"replaying the lineage of {row.get('variant')!r} gave id {variant.id}, not "
                          f"{row['variant_id']}: the results come from another model or task")
    return variant


def find_variant_row(rows, variant_id: str) -> dict:
    """The last row of ``variant_id`` (a unique prefix is enough)."""
    hits = [r for r in rows if str(r.get("variant_id", "")).startswith(variant_id)]
    ids = sorted({r["variant_id"] for r in hits})
    if len(ids) != 1:
        known = sorted({f"{r.get('variant_id')} ({r.get('variant')})" for r in rows if r.get("variant_id")})
        raise ExportError(f"variant id {variant_id!r} matches {len(ids)} variants in the results: use one of {known}")
    return hits[-1]


def _onnx_form(variant):
    """The variant itself when it already runs an ONNX file, else its validated ONNX export."""
    if onnx_file(variant) is not None:
        return variant
    from workbench.core import apply
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.tasks.hf_loading import is_causal_lm

    model = require_torch_module(variant, "export_bundle", "export a torch variant with its model or an ONNX variant")
    # Causal LMs are served as one full-sequence forward (no KV-cache tensors in the Triton interface).
    return apply(variant, ExportOnnxConfig.no_cache() if is_causal_lm(model) else ExportOnnxConfig())


def _quality_row(rows: list[dict], variant_id: str) -> dict | None:
    scored = [r for r in rows if r.get("variant_id") == variant_id and r.get("quality") is not None]
    return scored[-1] if scored else None


def _cost_lines(rows: list[dict], instance: str, utilisation: float) -> dict:
    from workbench.measure.cost import add_costs, get_price

    price = get_price(instance)
    costed = add_costs(rows, price, utilisation)
    keep = ("batch_size", "throughput_per_s", "usd_per_1k_requests", "usd_per_1m_tokens",
            "usd_per_1m_prompt_tokens", "usd_per_1m_output_tokens")
    return {"instance": price.instance, "usd_per_hour": price.usd_per_hour, "source": price.source,
            "date": price.date, "utilisation": utilisation,
            "points": [{k: r[k] for k in keep if k in r} for r in costed]}


def _model_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", raw).strip("-.")
    if not name:
        raise ExportError(f"model name {raw!r} has no usable characters: use letters, digits, '_', '.', '-'")
    return name


__all__ = ["export_bundle", "batching_plan", "variant_from_row", "find_variant_row", "reference_io", "write_manifest", "ExportError", "BUNDLE_FORMAT"]
