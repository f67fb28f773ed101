"""`workbench study SPEC [--ray ADDRESS]`: run a study spec here or on a Ray cluster; print the cheapest hardware."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("spec", help="study spec (.yaml/.yml/.toml): task, variants, points, SLO, hardware targets")
    p.add_argument("--ray", metavar="ADDRESS", help="run on this Ray cluster ('auto', 'host:6379', 'ray://host:10001')")
    p.add_argument("--redo", action="store_true", help="measure points again even when the study already has them")
    p.add_argument("--root", help="artifacts folder (default: $WORKBENCH_ARTIFACTS or ./artifacts)")


@command("study", "run a study spec here or on a Ray cluster (one measurement per node at a time)", _arguments)
def cmd_study(args) -> int:
    from workbench.cluster import cheapest_meeting_slo, load_spec, run_study
    from workbench.cluster.cheapest import format_cheapest
    from workbench.results import ResultsTable

    spec = load_spec(args.spec)
    before = len(ResultsTable.for_study(spec.study, root=args.root, environment=False))  # rows already there
    table = run_study(spec, ray_address=args.ray, redo=args.redo, root=args.root)
    new = table.rows[before:]
    failed = sum(1 for r in new if r.get("failed"))
    print(ResultsTable(rows=new).to_text(("variant_name", "instance", "batch_size", "seq_len", "quality",
                                          "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "node")))
    print(f"{len(new)} rows measured now ({failed} failed); the study holds {len(table.rows)} rows (points already "
          "measured in the same environment are skipped: --redo to measure them again)")
    if spec.slo_ms:
        print(f"\ncheapest hardware meeting {spec.percentile} <= {spec.slo_ms} ms:")
        print(format_cheapest(cheapest_meeting_slo(table.rows, spec.slo_ms, spec.percentile, spec.utilisation)))
    print(f"wrote {table.path}")
    return 0
