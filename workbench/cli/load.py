"""`workbench load BUNDLE --slo-ms MS`: serve the bundle's twin on Triton (loopback), sweep open-loop rates, goodput."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder written by `workbench export`")
    p.add_argument("--slo-ms", type=float, required=True, help="latency SLO per request, milliseconds")
    p.add_argument("--rates", default=None,
                   help="offered rates per second, comma-separated (default: 10%%..100%% of the synchronous capacity)")
    p.add_argument("--requests", type=int, default=500, help="requests per rate, warm-up included (1..20000)")
    p.add_argument("--attainment", type=float, default=0.99, help="fraction of requests that must meet the SLO")
    p.add_argument("--arrival", default="poisson", choices=["poisson", "constant", "gamma"])
    p.add_argument("--warmup-s", type=float, default=1.0, help="seconds of each point not counted")
    p.add_argument("--study", default="load", help="rows go to artifacts/<study>/results.jsonl")


def _rates(text: str | None):
    if text is None:
        return None
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--rates {text!r}: give numbers per second separated by commas, e.g. 5,10,20") from None
    if not rates or min(rates) <= 0:
        raise ValueError(f"--rates {text!r}: every rate must be > 0 per second")
    return rates


@command("load", "open-loop load sweep against a bundle served on Triton (loopback): latency curve and goodput",
         _arguments)
def cmd_load(args) -> int:
    import tempfile
    from pathlib import Path

    import numpy as np

    from workbench.results import ResultsTable
    from workbench.serving.load_sweep import goodput
    from workbench.serving.serve_check import TritonServer, triton_distribution, twin_repository
    from workbench.serving.verify import BundleError, check_external_data, check_files, load_manifest, reference_arrays
    from workbench.util.files import artifacts_root

    rates = _rates(args.rates)
    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    problems = check_files(bundle, manifest) + check_external_data(bundle, manifest)
    if problems:
        raise BundleError(f"refusing to serve {bundle}: " + "; ".join(problems))
    inputs, _ = reference_arrays(bundle)
    n_ref = len(next(iter(inputs.values())))

    def make_inputs(i: int) -> dict:
        k = i % n_ref
        return {name: np.ascontiguousarray(arr[k:k + 1]) for name, arr in inputs.items()}

    served = manifest.get("served") or {}
    base = {"variant_id": served.get("variant_id"), "variant": served.get("variant"), "bundle": str(bundle),
            "model": manifest["name"]}
    table = ResultsTable.for_study(args.study, root=artifacts_root())
    dist = triton_distribution()
    with tempfile.TemporaryDirectory(prefix="workbench-load-") as tmp:
        backends, repo = twin_repository(bundle, manifest, Path(tmp), dist)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            result = goodput(server.url, manifest["name"], make_inputs, args.slo_ms, rates=rates,
                             n_requests=args.requests, attainment=args.attainment, arrival=args.arrival,
                             warmup_s=args.warmup_s, row=base, table=table, progress=print)
    print(result.to_text())
    print(f"wrote {len(result.rows)} rows to {table.path}")
    return 0
