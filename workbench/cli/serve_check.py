"""`workbench serve-check BUNDLE`: serve the bundle on a real Triton server on loopback, check answers, stop it."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder written by `workbench export`")
    p.add_argument("--requests", type=int, default=64, help="requests in the burst (1..10000)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--out", default=None, help="report JSON (default artifacts/serve-check/<model>.json)")


@command("serve-check", "serve a bundle on a real Triton server (loopback), compare answers, report batching",
         _arguments)
def cmd_serve_check(args) -> int:
    import json
    from pathlib import Path

    from workbench.serving.bundle.serve_check import serve_check
    from workbench.util.files import artifacts_root

    report = serve_check(args.bundle, n_requests=args.requests, concurrency=args.concurrency)
    out = Path(args.out) if args.out else artifacts_root() / "serve-check" / f"{report.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    lat = report.latency_ms
    print(f"ok: Triton {report.server_version} served {report.model}; {report.n_correct}/{report.n_requests} answers "
          f"match the reference (max |diff| {report.max_abs_diff:.3g}); batches formed {report.batch_sizes}; "
          f"latency p50 {lat['p50']} / p90 {lat['p90']} / p99 {lat['p99']} ms at concurrency {report.concurrency}; "
          f"server stopped")
    print(f"wrote {out}")
    return 0
