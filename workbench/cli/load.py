"""`workbench load BUNDLE --slo-ms MS [--rates R,...] [--search [--write-config]]`: serve the bundle's twin on Triton
(loopback), sweep open-loop rates for the latency curve and goodput; ``--search`` tries serving configs for the most
goodput, ``--write-config`` puts the winner into the bundle (config.pbtxt, model card, manifest). A causal-LM bundle
is streamed token by token instead (:mod:`workbench.serving.load.lm`: TTFT / TPOT / ITL, SLO on TTFT p99); an engine
bundle is served by vLLM (:mod:`workbench.serving.engine.load`, ``--search``: :mod:`workbench.serving.engine.search`)."""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("bundle", help="bundle folder written by `workbench export`")
    p.add_argument("--slo-ms", type=float, required=True,
                   help="latency SLO per request, milliseconds (causal-LM bundles: on time to first token, TTFT p99)")
    p.add_argument("--rates", default=None,
                   help="offered rates per second, comma-separated (default: 10%%..100%% of the synchronous capacity;"
                        " with --search: the winner's curve at these rates after the search; causal-LM bundles: "
                        "25%%..100%% of 1 / one stream's measured end-to-end latency)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per rate, warm-up included (1..20000; default 500; causal-LM bundles: default "
                        "20 s of arrivals, 30..500)")
    p.add_argument("--new-tokens", type=int, default=None,
                   help="causal-LM bundles: tokens each streamed request generates (default 16)")
    p.add_argument("--slo-itl-ms", type=float, default=None,
                   help="engine bundles (vLLM): SLO on inter-token latency p99, ms (default 4 x --slo-ms / --new-tokens)")
    p.add_argument("--prompt-tokens", type=int, default=None, help="engine bundles: prompt length (default 128)")
    p.add_argument("--shared-prefix-tokens", type=int, default=0,
                   help="engine bundles: tokens of a system prompt every request shares (prefix caching)")
    from workbench.serving.engine.workloads import WORKLOADS

    p.add_argument("--workload", default=None, choices=list(WORKLOADS),
                   help="engine bundles: a named request shape (chat 128/32, long-prompt 448/16, long-answer 32/256, "
                        "shared-prefix 448/16 with 400 shared)")
    p.add_argument("--attainment", type=float, default=0.99, help="fraction of requests that must meet the SLO")
    p.add_argument("--arrival", default="poisson", choices=["poisson", "constant", "gamma"])
    p.add_argument("--warmup-s", type=float, default=1.0, help="seconds of each point not counted")
    p.add_argument("--study", default="load", help="rows go to artifacts/<study>/results.jsonl")
    p.add_argument("--search", action="store_true",
                   help="search max_batch_size, queue delay, preferred batch size and instances for goodput (engine "
                        "bundles: max-num-seqs, max-num-batched-tokens, KV-cache dtype, prefix caching)")
    p.add_argument("--small-search", action="store_true", help="with --search: a handful of candidates only")
    p.add_argument("--max-points", type=int, default=9,
                   help="with --search: load points per candidate's climb to its goodput (>= 2; fewer is coarser)")
    p.add_argument("--budget-s", type=float, default=900.0, help="with --search: wall-clock budget in seconds")
    p.add_argument("--write-config", action="store_true",
                   help="with --search: write the winner into the bundle (config.pbtxt, model card, manifest)")


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


def sweep_served(bundle, slo_ms: float, rates, args, table, serving=None):
    """Serve ``bundle`` (with ``serving`` settings, if given) and run the goodput sweep; the server dying mid-sweep
    ends it with a LoadError (rows done are in ``table``)."""
    import tempfile
    from pathlib import Path

    from workbench.serving.load.config_search import bundle_inputs, exported_config, model_capacity
    from workbench.serving.load.open_loop import LoadError
    from workbench.serving.load.sweep import goodput
    from workbench.serving.bundle.triton_server import TritonServer, triton_distribution, twin_repository
    from workbench.serving.bundle.serving_config import ServingConfig

    manifest, make_inputs = bundle_inputs(bundle)
    served = manifest.get("served") or {}
    base = {"variant_id": served.get("variant_id"), "variant": served.get("variant"), "bundle": str(bundle),
            "model": manifest["name"], **({"serving_config": serving.label()} if serving else {})}
    dist = triton_distribution()
    capacity = None
    if rates is None:   # rates scale with the model's one-at-a-time capacity, not with what a queue delay allows
        config = serving or exported_config(bundle, manifest)
        capacity = model_capacity(bundle, manifest, make_inputs, dist,
                                  ServingConfig.no_batching(config.max_batch_size, config.threads))
    with tempfile.TemporaryDirectory(prefix="workbench-load-") as tmp:
        backends, repo = twin_repository(bundle, manifest, Path(tmp), dist, serving=serving)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            def alive():
                if server.process.poll() is not None:
                    raise LoadError(f"Triton died mid-sweep (exit code {server.process.returncode}); the points "
                                    f"done are in {table.path}. Server log: {server.log_tail()}")

            return goodput(server.url, manifest["name"], make_inputs, slo_ms, rates=rates,
                           n_requests=args.requests, attainment=args.attainment, arrival=args.arrival,
                           warmup_s=args.warmup_s, row=base, table=table, progress=print, after_point=alive,
                           capacity=capacity)


@command("load", "open-loop load sweep against a bundle served on Triton (loopback): latency curve, goodput, "
                 "serving-config search", _arguments)
def cmd_load(args) -> int:
    from pathlib import Path

    from workbench.results import ResultsTable
    from workbench.serving.load import lm as load_lm
    from workbench.serving.bundle.verify import load_manifest
    from workbench.util.files import artifacts_root

    from workbench.serving.engine.export import is_engine_bundle

    rates = _rates(args.rates)
    if args.write_config and not args.search:
        raise ValueError("--write-config writes the winner of a search: add --search")
    if is_engine_bundle(load_manifest(Path(args.bundle))):
        return _load_engine(args, rates)
    bundle = Path(args.bundle)
    if load_lm.lm_graph(load_manifest(bundle)):
        if args.search:
            raise ValueError(load_lm.SEARCH_ERROR.format(bundle=bundle))
        table = ResultsTable.for_study(args.study, root=artifacts_root())
        new_tokens = load_lm.DEFAULT_NEW_TOKENS if args.new_tokens is None else args.new_tokens
        result = load_lm.sweep_lm(bundle, args.slo_ms, rates, new_tokens, args.requests, args.attainment,
                                  args.arrival, args.warmup_s, table, progress=print)
        print(result.to_text())
        print(f"wrote {len(result.rows)} rows to {table.path}")
        return 0
    if args.new_tokens is not None:
        raise ValueError("--new-tokens is for causal-LM bundles (streamed); this bundle answers one request at a time")
    if args.requests is None:
        args.requests = 500
    table = ResultsTable.for_study(args.study, root=artifacts_root())
    if not args.search:
        result = sweep_served(bundle, args.slo_ms, rates, args, table)
        print(result.to_text())
        print(f"wrote {len(result.rows)} rows to {table.path}")
        return 0
    from workbench.serving.load.config_search import SearchSpace, search_config
    from workbench.serving.load.search_space import ClimbSettings

    search = search_config(bundle, args.slo_ms, space=SearchSpace.small() if args.small_search else None,
                           attainment=args.attainment, budget_s=args.budget_s, table=table, progress=print,
                           settings=ClimbSettings(max_points=args.max_points))
    print(search.to_text())
    winner = search.winner
    if winner is None:
        raise ValueError(f"no candidate met the SLO ({args.attainment:.0%} within {args.slo_ms} ms) at any rate "
                         "tried: loosen --slo-ms or check the bundle's batch-1 latency")
    rows = (search.confirmed or winner).rows   # the confirmation climb: what the card and manifest quote
    if rates:
        curve = sweep_served(bundle, args.slo_ms, rates, args, table, serving=winner.config)
        print(curve.to_text())
        rows = curve.rows
    if args.write_config:
        from workbench.serving.bundle.write_config import write_serving_config

        write_serving_config(bundle, search.as_dict(), rows)
        print(f"wrote {winner.config.label()} into {bundle} (config.pbtxt, MODEL_CARD.md, manifest.json)")
    print(f"wrote rows to {table.path}")
    return 0


def _load_engine(args, rates) -> int:
    """An engine bundle: vLLM on loopback, AIPerf + the own client per rate (:mod:`workbench.serving.engine.load`);
    with ``--search``, the engine config search (:mod:`workbench.serving.engine.search`)."""
    from workbench.results import ResultsTable
    from workbench.serving.engine import load as engine_load
    from workbench.serving.engine.workloads import Workload, get_workload
    from workbench.util.files import artifacts_root

    if args.workload is not None:
        if args.prompt_tokens is not None or args.new_tokens is not None or args.shared_prefix_tokens:
            raise ValueError("--workload names the prompt / answer / shared-prefix tokens: leave out --prompt-tokens, "
                             "--new-tokens and --shared-prefix-tokens, or --workload")
        workload = get_workload(args.workload)
    else:
        workload = Workload("custom" if args.prompt_tokens or args.new_tokens or args.shared_prefix_tokens else "chat",
                            args.prompt_tokens or engine_load.DEFAULT_PROMPT_TOKENS,
                            args.new_tokens or engine_load.DEFAULT_NEW_TOKENS, args.shared_prefix_tokens)
    slo_itl = args.slo_itl_ms or 4 * args.slo_ms / workload.new_tokens
    if args.search and rates:
        raise ValueError("--rates with --search on an engine bundle: the search climbs its own rates and the "
                         "confirmation climb is the winner's curve; run `workbench load` again for other rates")
    table = ResultsTable.for_study(args.study, root=artifacts_root())
    if args.search:
        from workbench.serving.engine.search import search_engine, write_search

        result = search_engine(args.bundle, args.slo_ms, slo_itl, workload, args.attainment, args.budget_s,
                               max_points=args.max_points, small=args.small_search, table=table, progress=print)
        print(result.to_text())
        if args.write_config:
            write_search(args.bundle, result)
            print(f"wrote {result.confirmed.label} into {args.bundle} (engine_args.json, model.json, MODEL_CARD.md, "
                  "manifest.json)")
        print(f"wrote rows to {table.path}")
        return 0
    result = engine_load.sweep_engine(args.bundle, args.slo_ms, slo_itl, rates or [0.5, 1.0, 2.0],
                                      n_requests=args.requests or engine_load.DEFAULT_REQUESTS,
                                      attainment=args.attainment, table=table, progress=print, workload=workload)
    print(result.to_text())
    print(f"wrote {len(result.rows)} rows to {table.path}")
    return 0
