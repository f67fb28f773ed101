"""The bundles the load benchmark serves: the demo classifier (fp32, optionally dynamic int8) exported with one SLO
taken from its own measured batch-1 latency, and the demo causal LM exported for streaming."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def _quiet(msg: str) -> None:
    pass


def classifier_bundles(out: Path, threads: int = 2, slo_ms: float | None = None, int8: bool = False,
                       point_seconds: float = 2.0, log: Callable[[str], None] = _quiet) -> tuple[dict, float]:
    """({"fp32": bundle path[, "int8": ...]}, SLO ms): the demo classifier exported to ONNX with ``threads`` intra-op
    threads, its batching sweep (batch 1-16, ``point_seconds`` a point) and a bundle per precision under ``out``.

    ``slo_ms`` None: 10 x the fp32 bundle's measured batch-1 p50 (a tight but reachable interactive SLO on this
    machine; measured, never assumed), the same SLO for every bundle."""
    from workbench.core import apply
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.serving.bundle.export import export_bundle
    from workbench.steps import ExportOnnxConfig, QuantizeDynamicConfig
    from workbench.tasks import get_task

    task = get_task("text-classification")
    fp32 = apply(task.baseline(), ExportOnnxConfig(threads=threads, out_dir=str(out / "onnx")))
    variants = {"fp32": fp32}
    if int8:
        variants["int8"] = apply(fp32, QuantizeDynamicConfig(per_channel=True, reduce_range=True,
                                                             out_dir=str(out / "onnx")))
    sweep = SweepConfig(batch_sizes=(1, 2, 4, 8, 16), seq_lens=(None,), point_seconds=point_seconds, threads=threads)
    rows = {name: sweep_batching(task, v, sweep, progress=False) for name, v in variants.items()}
    if slo_ms is None:
        slo_ms = round(10 * next(r["latency_p50_ms"] for r in rows["fp32"] if r["batch_size"] == 1), 1)
    bundles = {}
    for name, v in variants.items():
        log(f"  exporting the {name} bundle (SLO {slo_ms} ms) ...")
        bundles[name] = export_bundle(v, rows[name], to=out / f"bundle-{name}", task=task, slo_ms=slo_ms,
                                      allow_unstable=True, name=f"clf-{name}")
    return bundles, slo_ms


def causal_lm_bundle(out: Path, sweep_batch_sizes=(1,), seq_len: int = 16, threads: int | None = None,
                     grid: tuple | None = None, task=None, overwrite: bool = False) -> Path:
    """The demo causal LM (or ``task``'s model) as a streamable bundle under ``out``: ONNX without past-KV inputs (the
    streamed model re-runs the whole prefix each token), a short forward-only sweep at ``seq_len`` tokens, a lax SLO
    (a load sweep judges TTFT against its own); its reference prompts are ``seq_len`` tokens of the task's test
    text. ``threads``: the export's and sweep's intra-op count (None: their defaults); ``grid``: the export's
    validation (batch sizes, sequence lengths) (None: the default grid). An existing ``out/bundle-lm`` is replaced
    only with ``overwrite`` (a benchmark re-run into its own folder); without it the call stops before any work."""
    from workbench.core import apply
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.serving.bundle.export import ExportError, export_bundle
    from workbench.steps import ExportOnnxConfig
    from workbench.tasks import get_task

    out = Path(out)
    dest = out / "bundle-lm"
    if dest.exists() and not overwrite:   # the export would refuse it too, but only after the ONNX export and sweep
        raise ExportError(f"{dest} already exists: choose another folder or pass overwrite=True")
    grid_kw = {} if grid is None else {"batch_sizes": tuple(grid[0]), "seq_lens": tuple(grid[1])}
    task = task or get_task("causal-lm")
    export = ExportOnnxConfig(with_past=False, threads=threads, out_dir=str(out / "onnx-lm"), **grid_kw)
    onnx = apply(task.baseline(), export)
    rows = sweep_batching(task, onnx, SweepConfig(batch_sizes=tuple(sweep_batch_sizes), seq_lens=(seq_len,),
                                                  point_seconds=0.5, threads=threads, forward_only=True),
                          progress=False)
    # about serving, not the plan: a loaded machine's unstable sweep still gives a bundle
    return export_bundle(onnx, rows, to=dest, task=task, slo_ms=10_000, percentile="p50",
                         allow_unstable=True, n_reference=2, overwrite=overwrite)


__all__ = ["classifier_bundles", "causal_lm_bundle"]
