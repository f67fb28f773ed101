"""`workbench export`: serving bundle (ONNX + Triton repository + model card + manifest) of a swept variant."""
from __future__ import annotations


from workbench.cli import add_task_arguments, command
from workbench.measure.timing import PERCENTILES


def _arguments(p) -> None:
    add_task_arguments(p)
    p.add_argument("--variant", default="onnx", help="baseline, onnx, or a variant id from the study's results")
    p.add_argument("--to", default=None, help="bundle folder (default artifacts/bundles/<name>); must not exist")
    p.add_argument("--name", default=None, help="Triton model name (default <task>-<variant>)")
    p.add_argument("--slo-ms", type=float, default=None, help="latency target that sets max_batch_size / queue delay")
    p.add_argument("--percentile", default="p99", choices=list(PERCENTILES))
    p.add_argument("--instance", default="c7i.large", help="price-table instance for the card's cost lines")
    p.add_argument("--utilisation", type=float, default=1.0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle (only once the new one is done)")
    p.add_argument("--engine", choices=["vllm"], default=None,
                   help="causal LMs: an engine bundle for vLLM (HF checkpoint bf16 / compressed-tensors int8 or int4, "
                        "engine args, Triton vLLM-backend files); --variant baseline, int8-wo, int4-wo or an id")
    p.add_argument("--allow-unstable", action="store_true",
                   help="plan on unstable sweep points when none is stable (the card marks the plan provisional)")


@command("export", "write a serving bundle (Triton model repository, model card, manifest) for a swept variant",
         _arguments)
def cmd_export(args) -> int:
    from workbench.cli.sweep import pick_variant
    from workbench.serving.bundle.export import export_bundle
    from workbench.results import ResultsTable
    from workbench.tasks import get_task

    from workbench.util.files import artifacts_root

    if args.engine:
        return _export_engine(args)
    table = ResultsTable.load(artifacts_root() / (args.study or args.task))  # missing: clear error
    task = get_task(args.task, args.model, args.data)
    variant = pick_variant(task, table.rows, args.variant, args.device)
    # A torch variant ships as its ONNX export; without a sweep of that ONNX variant in the study, export sweeps it
    # (the torch sweep's batch sizes, bounded per point) and appends the rows to the study's results.
    path = export_bundle(variant, table, to=args.to, task=task, slo_ms=args.slo_ms, percentile=args.percentile,
                         name=args.name, instance=args.instance, utilisation=args.utilisation,
                         overwrite=args.overwrite, threads=args.threads,
                         allow_unstable=args.allow_unstable)
    import json

    plan = json.loads((path / "manifest.json").read_text())["batching"]
    print(f"batching plan from the sweep of the shipped ONNX variant {plan['variant_id']}"
          + (f" (swept by export, rows appended to {table.path})" if plan.get("swept_at_export") else "")
          + f": max_batch_size {plan['max_batch_size']}, max queue delay {plan['max_queue_delay_us']} us")
    for note in (plan.get("notes") or []) + (plan.get("skipped") or []):
        print(f"  note: {note}")
    print(f"wrote bundle {path} (manifest {path / 'manifest.json'}, card {path / 'MODEL_CARD.md'})")
    return 0


def _export_engine(args) -> int:
    from workbench.results import ResultsTable
    from workbench.serving.engine.export import engine_variant, export_engine
    from workbench.tasks import get_task
    from workbench.util.files import artifacts_root

    task = get_task(args.task, args.model, args.data)
    study = artifacts_root() / (args.study or args.task)
    rows = ResultsTable.load(study).rows if (study / "results.jsonl").is_file() else []
    variant = engine_variant(task, "baseline" if args.variant == "onnx" else args.variant, rows, args.device)
    path = export_engine(variant, task, to=args.to, name=args.name, overwrite=args.overwrite)
    print(f"wrote vLLM engine bundle {path} (checkpoint {path / 'checkpoint'}, engine args {path / 'engine_args.json'},"
          f" Triton vLLM backend {path / 'triton'}, card {path / 'MODEL_CARD.md'})")
    return 0
