"""`workbench optimize`: from a model to a serving decision in one command, within a time budget.

The search (``optimize.search``) screens every arm of the catalogues for this task kind and ISA
(``optimize.candidates``), checks quality on the survivors, sweeps batching for the eligible ones (successive halving
on cost at the SLO), confirms the winner on fresh timings and test-split quality, then bundles it and load-checks it
(``optimize.handoff``). Every row is saved as measured (``optimize.store``: re-running resumes), every stage is
estimated from what was measured so far (``optimize.budget``), and the decision (``optimize.decision``) says why each
loser lost.

Example:
    >>> import workbench as wb
    >>> result = wb.optimize("text-classification", slo_ms=50, budget_s=600)       # doctest: +SKIP
    >>> print(wb.optimize.decision_text(result.decision))
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

from workbench.optimize.decision import decision_text  # noqa: F401  (light: no heavy imports at module top)


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns: the decision (``decision.json``'s dict), the rows, the study folder, the bundle."""

    decision: dict
    rows: list
    study_dir: Path
    bundle: Path | None


def resume_command(task, model, data, slo_ms, percentile, max_drop, budget_s, device, instances, traffic_per_day,
                   apis, study) -> str:
    """The CLI line that continues this run (same arguments: the store refuses other settings)."""
    parts = ["workbench optimize", f"--task {task}"]
    parts += [f"--model {model}"] if model else []
    parts += [f"--data {data}"] if data else []
    parts += [f"--slo-ms {slo_ms:g}", f"--percentile {percentile}", f"--max-drop {max_drop:g}",
              f"--budget {budget_s:g}s", f"--device {device}", f"--instances {','.join(instances)}"]
    parts += [f"--traffic {traffic_per_day:g}"] if traffic_per_day else []
    parts += [f"--api {a}" for a in apis or ()]
    parts += [f"--study {study}"]
    return " ".join(parts)


def run_settings(task, model, data, slo_ms, percentile, max_drop, device, budget_s, instances, threads) -> dict:
    """The settings a study is kept under (``run.json``): a re-run with other settings is refused, not mixed."""
    return {"task": task, "model": str(model) if model else None, "data": str(data) if data else None,
            "slo_ms": float(slo_ms), "percentile": percentile, "max_drop": float(max_drop), "device": device,
            "budget_s": budget_s, "instances": list(instances), "threads": threads}


def optimize(task: str, model=None, data=None, slo_ms: float = 50.0, percentile: str = "p99", max_drop: float = 1.0,
             budget_s: float = 1200.0, device: str = "cpu", instances=None, traffic_per_day=None,
             apis=None, study: str | None = None, redo: bool = False, bundle: bool = True, load_check: bool = True,
             on_event=None, progress: bool = True, threads: int | None = None) -> OptimizeResult:
    """Search the arms for ``task`` under ``budget_s`` seconds and write ``artifacts/<study>/decision.json``.

    Args:
        task: "text-classification" or "causal-lm" (the built-in kinds; text2text has no arm catalogue yet).
        model, data: a local HF directory and a JSONL file (default: the demo weights and data).
        slo_ms, percentile: the latency objective the batching sweeps are read at.
        max_drop: the largest quality drop accepted, the upper end of the paired 95% CI: points of accuracy for a
            classifier, % perplexity increase over the baseline for a causal LM (``decision["drop_unit"]``).
        budget_s: wall seconds for the whole run (resumed runs count the earlier runs' time too).
        device: "cpu" (the CPU catalogue for this ISA) or "cuda" (the GPU catalogues: ``arms.gpu`` for a
            classifier, the LLM arms on the GPU for a causal LM).
        instances: price-table instances to cost the SLO point on (the first one ranks the arms); of the device's
            kind (a CPU instance prices CPU throughput). Default: c7i.large on cpu, g6.xlarge on cuda.
        traffic_per_day, apis: requests per day and hosted APIs for the build-vs-buy lines.
        study: the folder under the artifacts root (default ``optimize-<task>``); redo: start it over.
        bundle, load_check: hand-off steps (skipped with a reason when not possible or not within budget).
        on_event: ``fn(event)`` after each row and at each stage (see the README's optimize section).
        threads: intra-op threads of every arm (default torch's).

    Ctrl-C keeps every saved row, writes decision.json with ``complete: false`` and re-raises KeyboardInterrupt; the
    decision's ``resume`` is the command that continues.
    """
    from workbench.optimize.budget import Budget, BudgetError, parse_duration, parse_rate
    from workbench.optimize.store import Store
    from workbench.util.files import artifacts_root

    budget_s = parse_duration(budget_s)
    traffic = parse_rate(traffic_per_day)
    if slo_ms is None or slo_ms <= 0:
        raise ValueError(f"slo_ms {slo_ms!r} must be a positive number of milliseconds (e.g. --slo-ms 50)")
    if max_drop is None or max_drop < 0:
        raise ValueError(f"max_drop {max_drop!r} must be >= 0 points (e.g. --max-drop 1.0)")
    instances = _instances_for(device, instances)
    if task == "causal-lm" and percentile not in ("p50", "p99"):
        raise ValueError(f"percentile {percentile!r}: the causal-LM search reads per-token latency (ITL) at p50 or "
                         "p99 (the request metrics' percentiles): use --percentile p99 or p50")
    study = study or f"optimize-{task}"
    folder = artifacts_root() / study
    settings = run_settings(task, model, data, slo_ms, percentile, max_drop, device, budget_s, instances, threads)
    store = Store(folder, settings, redo=redo)
    budget = Budget(budget_s, spent_before_s=store.spent_before_s)
    resume = resume_command(task, model, data, slo_ms, percentile, max_drop, budget_s, device, instances, traffic,
                            apis, study)
    emit = on_event or (lambda event: None)
    log = print if progress else (lambda message: None)
    search = _start(task, model, data, settings, store, budget, emit, log, threads)
    from workbench.optimize import decision as dec
    from workbench.optimize.search import confirm, quality, screen, sweep

    meta = {"task": task, "model": str(model) if model else "demo", "device": device, "cpu": search._cpu,
            "isa": search.isa, "resume": resume, "study": study}
    if device == "cuda":
        from workbench.runtime.gpu import gpu_summary

        meta["gpu"] = gpu_summary()
    bundle_path = load = None
    notes = []

    def write(complete: bool) -> dict:
        store.record_time(budget.elapsed_s)
        data_ = dec.decision(search, complete, {**meta, "notes": notes}, bundle_path, load, traffic, apis)
        dec.write(folder, data_)
        return data_

    try:
        for stage in (screen, quality, sweep, confirm):
            stage(search)
            write(False)
        if bundle:
            need = budget.sweep_estimate(len(search.settings.grid), 2.0) + 30
            if budget.fits(need):
                search.enter("bundle", need, 1)
                try:
                    bundle_path, note = search.kind.bundle(search, folder / "bundle")
                except Exception as exc:  # noqa: BLE001 - no bundle is a finding of the run, not a crash of it
                    note = f"no bundle: {type(exc).__name__}: {exc}"[:600]
                notes.append(note)
            else:
                search.skipped_for_budget.append(budget.why_not("the serving bundle", need))
        if bundle_path and load_check:
            missing = search.kind.load_check_missing()
            if missing:
                notes.append(f"load check skipped: {missing}")
            elif not budget.fits(search.kind.load_check_s):
                search.skipped_for_budget.append(budget.why_not("the open-loop load check", search.kind.load_check_s))
            elif search.store.get("load", search.winner or search.baseline) is not None:
                saved = search.store.get("load", search.winner or search.baseline)
                load = saved.get("load_check")
            else:
                search.enter("load", search.kind.load_check_s, 1)
                load, row = search.kind.load_check(search, Path(bundle_path))
                search.save({**row, "stage": "load", "arm": search.winner or search.baseline, "load_check": load,
                             "batch_size": None})
        search.stage = "done"
        final = write(True)
    except KeyboardInterrupt:
        final = write(False)
        search.close()
        if progress:
            print(f"interrupted: {len(store.saved)} rows kept in {store.table.path}; resume with:\n  {resume}")
        raise
    except BudgetError:
        search.close()
        raise
    search.close()
    emit({"type": "done", "decision": final})
    return OptimizeResult(final, list(store.table.rows), folder,
                          Path(bundle_path) if bundle_path else None)


def _instances_for(device: str, instances) -> tuple[str, ...]:
    """The instances to price on, checked before any work: a device the search cannot run on, an unknown
    instance (naming the price table) or one of another kind than the device (GPU throughput priced at a CPU
    instance's hour, or the reverse) is refused with the fix."""
    from workbench.measure.cost import DEFAULT_INSTANCES, get_price

    if device not in DEFAULT_INSTANCES:
        raise ValueError(f"device {device!r}: use cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device 'cuda': torch sees no GPU here (torch.cuda.is_available() is False): run on a "
                             "GPU machine with a CUDA build of torch, or use --device cpu")
    if instances is None:
        instances = (DEFAULT_INSTANCES[device],)
    instances = tuple(instances) if not isinstance(instances, str) else tuple(instances.split(","))
    want = "gpu" if device == "cuda" else "cpu"
    for instance in instances:
        price = get_price(instance)   # an unknown instance fails here, naming the price table
        if price.kind and price.kind != want:
            raise ValueError(f"instance {instance} is a {price.kind} instance but the search runs on {device}: the "
                             f"cost prices the throughput measured here at that instance's hour; pass {want} "
                             f"instances (e.g. --instances {DEFAULT_INSTANCES[device]})")
    return instances


def _start(task_kind, model, data, settings, store, budget, emit, log, threads):
    """The task, its arms and their context, and the search state (refuses a budget below the baseline's need)."""
    from workbench.optimize.budget import BudgetError
    from workbench.optimize.candidates import candidates
    from workbench.optimize.kinds import kind_for
    from workbench.optimize.search import Search, Settings
    from workbench.runtime.cpu import cpu_model_and_flags, isa_summary
    from workbench.tasks import get_task
    from workbench.util.settings import small_mode

    kind = kind_for(task_kind, small_mode(), settings["device"])
    st = kind.settings(Settings.for_mode(small_mode()))
    floor = (budget.build_estimate(["baseline"]) + st.screen_rounds * st.screen_seconds
             + budget.eval_estimate(1) + budget.sweep_estimate(st.sweep_reserve, st.point_seconds))
    if budget.left_s < floor:
        raise BudgetError(f"budget {budget.budget_s:.0f} s is too small for even the baseline: it needs ~{floor:.0f} s "
                          f"(build, a short timing, one quality pass, {st.sweep_reserve} sweep points)"
                          + (f"; {budget.budget_s - budget.left_s:.0f} s were spent by earlier runs of this study"
                             if budget.spent_before_s else "") + f": pass --budget {int(floor + 0.999 + budget.spent_before_s)}s or more")
    task = get_task(task_kind, model, data)
    cpu, flags = cpu_model_and_flags()
    isa = isa_summary(flags)
    calibration = kind.calibration(task, st, store.folder)
    arms, skipped = candidates(task_kind, isa, calibration, budget, settings["device"])
    ctx = kind.context(task, st, threads, store.folder, log)
    search = Search(task, task_kind, arms, ctx, st, store, budget, settings["slo_ms"], settings["percentile"],
                    settings["max_drop"], tuple(settings["instances"]), emit, isa, kind=kind)
    search.skipped_for_budget += skipped
    search._cpu = cpu
    return search


class _CallableModule(types.ModuleType):
    """``wb.optimize(...)`` and ``import workbench.optimize`` name the same thing: the package is callable."""

    def __call__(self, *args, **kwargs):
        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["optimize", "OptimizeResult", "decision_text", "resume_command"]
