"""`workbench sweep`: batching sweep of one variant (+ cost per point and an optional SLO reading)."""
from __future__ import annotations

from workbench.cli import add_task_arguments, command, task_from_args
from workbench.measure.timing import PERCENTILES


def pick_variant(task, rows, spec: str, device: str = "cpu"):
    """``baseline`` (torch fp32), ``onnx`` (the validated ONNX export of it) or a variant id from the results."""
    if spec == "baseline":
        return task.baseline(device)
    if spec == "onnx":
        from workbench.core import apply
        from workbench.steps.export_onnx import ExportOnnxConfig

        return apply(task.baseline(device), ExportOnnxConfig())
    from workbench.serving.bundle.export import find_variant_row, variant_from_row

    return variant_from_row(task, find_variant_row(rows, spec))


def _arguments(p) -> None:
    add_task_arguments(p)
    p.add_argument("--variant", default="baseline", help="baseline, onnx, or a variant id from the study's results")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--seq-lens", type=int, nargs="+", default=None, help="input / prompt lengths (default: the task's)")
    p.add_argument("--output-lens", type=int, nargs="+", default=[16], help="generated tokens (causal-lm)")
    p.add_argument("--latency-cap-ms", type=float, default=None, help="stop growing the batch past this p99")
    p.add_argument("--point-seconds", type=float, default=10.0, help="timing budget per point")
    p.add_argument("--timeout-s", type=float, default=60.0, help="a single call slower than this fails the point")
    p.add_argument("--slo-ms", type=float, default=None, help="latency target to read the largest feasible batch")
    p.add_argument("--percentile", default="p99", choices=list(PERCENTILES))
    p.add_argument("--instance", default="c7i.large", help="price-table instance for the cost columns")
    p.add_argument("--prices", default=None, help="your price table CSV (instance, usd_per_hour, source, date)")
    p.add_argument("--utilisation", type=float, default=1.0, help="busy share of paid hours, (0, 1]")
    p.add_argument("--api-usd-per-1m", type=float, default=None, help="hosted-API $ per 1M input tokens (break-even)")
    p.add_argument("--api-usd-per-1m-output", type=float, default=None, help="hosted-API $ per 1M output tokens (LMs)")
    p.add_argument("--redo", action="store_true",
                   help="measure points the study already holds for this variant and environment again "
                        "(default: skip them, so a re-run or an interrupted sweep resumes without duplicates)")


class _CostedTable:
    """Appends each measured row with its cost columns, so the saved row already carries them; anything else
    (``saved_point``, ``rows``, ...) is the table's own."""

    def __init__(self, table, price, utilisation, api, api_out=None):
        self.table, self.price, self.utilisation, self.api, self.api_out = table, price, utilisation, api, api_out

    def append(self, row: dict) -> dict:
        return self.table.append(self.costed([row])[0])

    def costed(self, rows: list[dict]) -> list[dict]:
        """Copies of ``rows`` with the cost columns of this run's price (saved rows may carry another's)."""
        from workbench.measure.cost import add_costs

        return add_costs(rows, self.price, self.utilisation, self.api, api_usd_per_1m_output_tokens=self.api_out)

    def __getattr__(self, name):
        if name == "table":   # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.table, name)


@command("sweep", "batching sweep (batch x seq len; LMs: prompt x output len) with cost per point", _arguments)
def cmd_sweep(args) -> int:
    from workbench.measure import environment_fingerprint
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.measure.cost import get_price, load_price_table
    from workbench.measure.slo import slo_point
    from workbench.results import ResultsTable

    price = get_price(args.instance, load_price_table(args.prices))  # bad price input fails before any timing
    config = SweepConfig(batch_sizes=tuple(args.batch_sizes), seq_lens=tuple(args.seq_lens or [None]),
                         output_lens=tuple(args.output_lens), latency_cap_ms=args.latency_cap_ms,
                         point_seconds=args.point_seconds, timeout_s=args.timeout_s,
                         threads=args.threads)
    task = task_from_args(args)
    table = ResultsTable.for_study(args.study or args.task, environment=environment_fingerprint())
    variant = pick_variant(task, table.rows, args.variant, args.device)
    saved_before = {id(r) for r in table.rows}
    costed = _CostedTable(table, price, args.utilisation, args.api_usd_per_1m, args.api_usd_per_1m_output)
    rows = sweep_batching(task, variant, config, costed, redo=args.redo)
    reused = sum(id(r) in saved_before for r in rows)
    if reused:
        print(f"{reused} of {len(rows)} points were already measured for {variant.id} in this environment: their "
              "saved rows are shown (--redo measures them again)")
    print(ResultsTable(rows=costed.costed(rows)).to_text((
        "variant", "batch_size", "seq_len", "output_len", "latency_p50_ms", "latency_p99_ms", "throughput_per_s",
        "tokens_per_s", "peak_rss_mb", "usd_per_1m_requests", "usd_per_1m_tokens", "usd_per_1m_prompt_tokens",
        "usd_per_1m_output_tokens", "break_even_utilisation", "failed")))
    print(f"prices: {price.instance} ${price.usd_per_hour}/h ({price.source}, {price.date}), "
          f"utilisation {args.utilisation}")
    if args.slo_ms:
        for seq in sorted({r.get("seq_len") for r in rows if not r.get("failed")}, key=lambda s: s or 0):
            slo = slo_point([r for r in rows if r.get("seq_len") == seq], args.slo_ms, args.percentile)
            print(f"SLO seq_len {seq}: {slo.reason}; knee at batch {slo.knee_batch_size}")
    print(f"variant {variant.id} ({variant.name}); wrote {table.path}")
    return 0
