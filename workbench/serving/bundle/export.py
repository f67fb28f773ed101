"""Serving bundle: the validated ONNX model as a Triton model repository, a model card and a checksummed manifest.

Layout of ``export_bundle(...)``'s folder::

    manifest.json                       every file + sha256, lineage with configs, environment, metrics, versions
    MODEL_CARD.md                       intended use, lineage, accuracy (CI), latency/throughput, cost, limitations
    model_repository/<name>/config.pbtxt          inputs/outputs, max_batch_size, dynamic_batching, instance_group
    model_repository/<name>/1/model.onnx          the ONNX file (validated against its torch parent at export)
    reference/inputs.npz, reference/outputs.npz   real inputs and the variant's outputs, for verify / serve-check
    results.jsonl                                 the measured rows the bundle's numbers come from
    tokenizer/                                    the task's tokenizer, when it has one

The batching plan, the card's latency/throughput table and its cost lines come from a sweep of the ONNX variant
that is shipped, never of another artifact. Exporting a torch variant exports it to ONNX first; when the results
hold no sweep of that ONNX variant, export sweeps it (the batch sizes and input length of the torch variant's
sweep, a bounded ``EXPORT_POINT_SECONDS`` per point, enough calls for the SLO percentile) and adds the rows to the
results table. Sweeping beats failing here: the ONNX variant is made inside export, so a user told to sweep it
first would have no way to name it to ``workbench sweep``; the serving engineer gets the figures of the file they
deploy in one step, and the card says they were measured at export.

``max_batch_size`` is the largest batch meeting the SLO (or the largest that ran), the preferred sizes are the knee
and that batch, and the queue delay is what the SLO leaves once a request has waited behind a running batch and
run in its own (``SLO - 2 x latency at max_batch_size``, floored at 0; without an SLO: one batch-1 service time).
Only stable points (``stable`` True) are planned on, at the highest percentile they have enough calls for; the plan
lists what it skipped. Everything is written into a temporary folder beside the destination and renamed into place
at the end: never a half-written bundle, and an existing bundle is only replaced when asked (and only by a complete
one).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from workbench.measure.batching import sweep_rows
from workbench.serving.bundle.plan import (MAX_QUEUE_DELAY_US, QUEUE_WAIT_BATCHES, ExportError,  # noqa: F401
                                    batching_plan)
from workbench.runtime import onnx_file, require_torch_module, runner_threads
from workbench.util.files import artifacts_root, publish_dir, sha256

BUNDLE_FORMAT = "workbench-bundle/1"
REPOSITORY = "model_repository"
EXPORT_POINT_SECONDS = 10.0  # timing budget per point when export sweeps the shipped ONNX variant (small mode: 2 s)


def export_bundle(variant, results, to: str | Path | None = None, task=None, slo_ms: float | None = None,
                  percentile: str = "p99", name: str | None = None, instance: str = "c7i.large",
                  utilisation: float = 1.0, n_reference: int = 4, overwrite: bool = False,
                  threads: int | None = None, allow_unstable: bool = False) -> Path:
    """Write the serving bundle of ``variant`` (its ONNX form) to ``to`` and return that folder.

    Args:
        variant: the chosen Variant; a torch variant is exported with the validated ONNX step first.
        results: ResultsTable / rows holding a batching sweep (``workbench sweep``) of the shipped ONNX variant, or
            of the torch variant (export then sweeps its ONNX form over the same batch sizes; new rows are appended
            when ``results`` is a ResultsTable), and, ideally, a quality row (``workbench measure``).
        to: destination folder (default ``artifacts/bundles/<name>``); must not exist unless ``overwrite``.
        task: the Task (reference inputs, tokenizer, eval facts); default: ``variant.meta["example_inputs"]``.
        slo_ms / percentile: latency objective that sets max_batch_size and the queue delay.
        name: Triton model name (default ``<task>-<variant>``).
        instance / utilisation: price-table instance and busy share for the card's cost lines.
        n_reference: reference examples saved for verify / serve-check.
        threads: intra-op threads of a sweep export runs itself (default: the count the torch variant's sweep ran
            at). Triton's ``intra_op_thread_count`` is always the count the planned rows were measured with.
        allow_unstable: when no swept point is stable, plan on them anyway; the manifest and card mark the plan
            provisional (default: refuse, nothing written).

    Example:
        >>> bundle = export_bundle(int8, table, task=task, slo_ms=50, to="artifacts/bundles/clf")  # doctest: +SKIP
        >>> verify_bundle(bundle)
    """
    from workbench.serving.bundle.model_card import model_card
    from workbench.measure.environment import environment_fingerprint
    from workbench.serving.bundle.triton_config import render_config, tensor_specs_from_onnx
    from workbench.runtime.onnx_files import copy_onnx

    rows = list(results)
    name = _model_name(name or f"{variant.task}-{variant.name}")
    dest = Path(to) if to else artifacts_root() / "bundles" / name
    if dest.exists() and not overwrite:
        raise ExportError(f"{dest} already exists: choose another --to or pass overwrite=True (--overwrite)")
    if onnx_file(variant) is not None:
        onnx_variant, swept = variant, False
        plan = batching_plan(rows, variant.id, slo_ms, percentile, allow_unstable)  # an infeasible SLO stops here
    else:
        onnx_variant, swept = _shipped_and_swept(variant, rows, results, task, percentile, threads)
        plan = batching_plan(rows, onnx_variant.id, slo_ms, percentile, allow_unstable)
    plan["swept_at_export"] = swept
    onnx_path = Path(onnx_variant.artifact_path)
    inputs, outputs = tensor_specs_from_onnx(onnx_path)
    # Serve at the thread count the planned rows ran at (the runner's own count when the rows do not say).
    served_threads = plan.get("threads") or runner_threads(onnx_variant) or onnx_variant.meta.get("ort_threads")
    config_text = render_config(name, inputs, outputs, plan["max_batch_size"], plan["preferred_batch_sizes"],
                                plan["max_queue_delay_us"], "KIND_GPU" if variant.device == "cuda" else "KIND_CPU",
                                threads=served_threads)
    ref_in, ref_out = reference_io(onnx_variant, task, n_reference, plan["seq_len"])
    batch_noise = batch_composition_noise(onnx_variant, ref_in, ref_out)
    quality = _quality_row(rows, onnx_variant.id) or _quality_row(rows, variant.id)
    costs = _cost_lines(plan["rows"], instance, utilisation)
    env = environment_fingerprint()
    with publish_dir(dest) as tmp:  # the bundle appears complete or not at all; an old one is kept until then
        model_dir = tmp / REPOSITORY / name
        (model_dir / "1").mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(config_text)
        copy_onnx(onnx_path, model_dir / "1")  # the .onnx and every external-data file its graph names
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


def export_point_seconds() -> float:
    """Timing budget per point of the sweep export runs itself (``EXPORT_POINT_SECONDS``; 2 s in small mode)."""
    from workbench.util.settings import small_mode

    return 2.0 if small_mode() else EXPORT_POINT_SECONDS


def _shipped_and_swept(variant, rows: list[dict], results, task, percentile: str, threads: int | None):
    """(the ONNX variant that ships for torch ``variant``, whether export swept it now).

    When ``rows`` hold no sweep of the shipped ONNX variant, it is swept here over the batch sizes and input length
    of ``variant``'s own sweep (bounded: ``export_point_seconds()`` per point); the new rows are appended to ``rows``
    and, when ``results`` is a ResultsTable, saved there too. A point whose timing did not settle is timed once
    more (``SweepConfig.retries``). Checks run before the (slow) ONNX export.
    """
    from workbench.core import config_to_dict, lineage_id
    from workbench.results import ResultsTable

    config = _export_config(variant)
    shipped_id = lineage_id(variant.id, "export_onnx", config_to_dict(config))
    if sweep_rows(rows, shipped_id):
        return _onnx_form(variant, config), False
    source = [r for r in rows if r.get("variant_id") == variant.id
              and r.get("scenario") in ("batching", "generation-batching")]
    if not sweep_rows(source, variant.id):
        raise ExportError(f"no batching sweep of variant {variant.id} ({variant.name}) or of the ONNX variant "
                          f"{shipped_id} that ships for it: run `workbench sweep` for {variant.id} first (export "
                          "then sweeps the ONNX variant over the same batch sizes)")
    if task is None:
        raise ExportError(f"the results hold no sweep of the shipped ONNX variant {shipped_id}, and export needs the "
                          f"task (task=...) to sweep it: pass the task, or sweep {shipped_id} yourself")
    from workbench.measure.batching import SweepConfig, sweep_batching

    seq_len = max(r.get("seq_len") or 0 for r in sweep_rows(source, variant.id)) or None
    line = [r for r in source if r.get("seq_len") == seq_len]
    counts = sorted({int(r["threads"]) for r in line if r.get("threads")})
    config_sweep = SweepConfig(batch_sizes=tuple(sorted({int(r["batch_size"]) for r in line})), seq_lens=(seq_len,),
                               latency_cap_ms=next((r["latency_cap_ms"] for r in line if r.get("latency_cap_ms")), None),
                               point_seconds=export_point_seconds(), percentile=percentile,
                               threads=threads or (counts[-1] if len(counts) == 1 else None),
                               forward_only=True)  # the served graph is one forward call, also for LMs
    onnx_variant = _onnx_form(variant, config)
    table = results if isinstance(results, ResultsTable) else None
    rows.extend(sweep_batching(task, onnx_variant, config_sweep, table=table, progress=False))
    return onnx_variant, True


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


def _export_config(variant):
    """The ExportOnnxConfig export_bundle ships a torch variant with."""
    from workbench.steps.export_onnx import ExportOnnxConfig
    from workbench.tasks.hf_loading import is_causal_lm

    model = require_torch_module(variant, "export_bundle", "export a torch variant with its model or an ONNX variant")
    # Causal LMs are served as one full-sequence forward (no KV-cache tensors in the Triton interface).
    return ExportOnnxConfig.no_cache() if is_causal_lm(model) else ExportOnnxConfig()


def _onnx_form(variant, config=None):
    """The variant itself when it already runs an ONNX file, else its validated ONNX export."""
    if onnx_file(variant) is not None:
        return variant
    from workbench.core import apply

    return apply(variant, config or _export_config(variant))


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


__all__ = ["export_bundle", "batching_plan", "variant_from_row", "find_variant_row", "reference_io", "write_manifest",
           "ExportError", "BUNDLE_FORMAT", "QUEUE_WAIT_BATCHES", "EXPORT_POINT_SECONDS"]
