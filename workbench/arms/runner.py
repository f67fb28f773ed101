"""The one runner for arms: build, time side by side (interleaved), measure quality on the timed variant, pick by the
one eligibility rule, and confirm the winner on fresh timings.

Fair by construction:
- every arm gets the same untimed warm-up (``warmup`` calls; the first one's time is reported apart as
  ``first_call_ms``), whatever its build did before;
- the arms take turns round by round (``measure.interleaved.time_interleaved``) in an order shuffled with a seed each
  round (``shuffle_seed``; None: rotated by one each round), so no arm always follows the same neighbour;
- in one process, or each arm in its own process (``isolate=True``: ``measure.arm_process.ArmProcess``, spawned; the
  child builds the arm from a *recipe* and times each call itself, so the pipe is not counted);
- an arm that cannot run here, is skipped by the user, fails to build or crashes while timed is a row with the reason
  (``arms.rows``), and the other arms go on;
- :func:`compare`: a selection run over every arm -> the fastest arm within tolerance (``arms.eligibility.pick``) ->
  a FRESH confirmation run of that winner against the baseline alone. Both ratios are returned
  (``selection_speedup``, ``confirmed_speedup``): the headline is the confirmed one, never the maximum over many noisy
  arms of the selection sample.

A recipe (for ``isolate=True``) is ``(source, factory, kwargs)``: ``source`` a module name or a ``.py`` path,
``factory(**kwargs)`` returns ``(arms, ArmContext)`` in the child (kwargs must pickle). The child builds the arm of the
same name from it.

Example:
    >>> result = compare(cpu_arms(isa), ctx, tolerance=1.0, seconds=1.0)          # doctest: +SKIP
    >>> result.pick.arm, result.selection_speedup, result.confirmed_speedup
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from workbench.arms.base import Arm, ArmContext, BuiltArm
from workbench.arms.eligibility import UNCHECKED, Pick, pick
from workbench.arms.rows import FAILED, MEASURED, NOT_AVAILABLE, SKIPPED, arm_row


@dataclass
class Prepared:
    """The arms of a run after building: ``built`` (name -> BuiltArm, in catalogue order) and ``not_run`` (name ->
    (status, reason)) for those that are not available here, skipped, or failed to build."""

    arms: dict[str, Arm]
    built: dict[str, BuiltArm] = field(default_factory=dict)
    not_run: dict[str, tuple[str, str]] = field(default_factory=dict)

    def close(self) -> None:
        for b in self.built.values():
            b.release()


@dataclass
class TimedRun:
    """One interleaved run: ``timing`` (name -> ArmTiming) of the arms that finished, ``errors`` (name -> why an arm
    crashed while timed), ``first_ms`` (first warm-up call per arm) and ``warmup`` (untimed calls each arm made).
    ``reference``: name -> ArmTiming of the reference calls timed in the same rounds (never arms: no row, no pick)."""

    timing: dict
    errors: dict[str, str]
    first_ms: dict[str, float]
    warmup: int
    reference: dict = field(default_factory=dict)

    def ratio(self, baseline: str, arm: str, figure: str = "p50_ms") -> float | None:
        """``baseline``'s figure / ``arm``'s (how many times faster), None when either did not finish."""
        if baseline not in self.timing or arm not in self.timing:
            return None
        return round(getattr(self.timing[baseline], figure) / getattr(self.timing[arm], figure), 3)


def _child_arm(recipe_source: str, recipe_factory: str, recipe_kwargs: dict, arm_name: str):
    """In an arm's own process: build ``arm_name`` from the recipe; ``call("time")`` times one unit of work here."""
    from workbench.measure.arm_process import _load
    from workbench.measure.interleaved import Timed
    from workbench.measure.timing import pin_threads, timed_call

    arms, ctx = getattr(_load(recipe_source), recipe_factory)(**recipe_kwargs)
    if ctx.threads:
        pin_threads(ctx.threads)
    arm = next((a for a in arms if a.name == arm_name), None)
    if arm is None:
        raise KeyError(f"the recipe {recipe_source}:{recipe_factory} has no arm named {arm_name!r}")
    built = arm.build(ctx)

    def call(op: str = "time"):
        if op == "time":
            if ctx.device == "cpu":      # the same clock as timed_call, without importing torch for a CPU arm
                start = time.perf_counter()
                value = built.call()
                ms = (time.perf_counter() - start) * 1e3
            else:
                ms, value = timed_call(built.call, ctx.device)
            return value if isinstance(value, Timed) else Timed(ms, value)
        return {"quality": built.quality, "report_quality": built.report_quality}[op]()

    return call, {"meta": built.meta, "quality": built.quality is not None,
                  "report_quality": built.report_quality is not None}


def _in_process(arm: Arm, recipe: tuple[str, str, dict]) -> BuiltArm:
    from workbench.measure.arm_process import ArmProcess

    source, factory, kwargs = recipe
    proc = ArmProcess("workbench.arms.runner", "_child_arm", recipe_source=str(source), recipe_factory=factory,
                      recipe_kwargs=kwargs, arm_name=arm.name)
    info = proc.info
    return BuiltArm(call=lambda: proc("time"), variant=None,
                    quality=(lambda: proc("quality")) if info["quality"] else None,
                    report_quality=(lambda: proc("report_quality")) if info["report_quality"] else None,
                    meta=dict(info["meta"]), close=proc.close)


def _record_calls(built: BuiltArm, store: list) -> None:
    """Make ``built.call`` append what each call returns to ``store`` (an isolated arm's call returns a ``Timed``
    from its process: its value is what the arm returned there). The append is the only work added to the call."""
    from workbench.measure.interleaved import Timed

    call = built.call

    def recorded():
        out = call()
        store.append(out.value if isinstance(out, Timed) else out)
        return out
    recorded.__dict__.update(getattr(call, "__dict__", {}))   # what the call carries (e.g. ``at_batch``) stays on it
    built.call = recorded


def build_arms(arms: Iterable[Arm], ctx: ArmContext, skip_kinds: Iterable[str] = (), only: Iterable[str] | None = None,
               isolate: bool = False, recipe: tuple[str, str, dict] | None = None) -> Prepared:
    """Build every arm that runs here, one after another (a build never competes with another for the CPU).

    ``skip_kinds``: kinds the user skips (a row "skipped" with the reason); ``only``: names to run (the baseline
    always runs); ``isolate``: each arm in its own process, built from ``recipe``. A build that raises is a "failed"
    row with the exception; the others go on. An arm with ``records`` keeps every call's return value in
    ``ctx.cache["results"][name]`` (this process's context, isolated or not).
    """
    from tqdm.auto import tqdm

    if isolate and recipe is None:
        raise ValueError("isolate=True builds each arm in its own process from a recipe: pass recipe=(source, factory, "
                         "kwargs) whose factory returns (arms, ArmContext)")
    arms = list(arms)
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique: {names}")
    if sum(a.baseline for a in arms) != 1:
        raise ValueError(f"a comparison needs exactly one baseline arm, got {[a.name for a in arms if a.baseline]}")
    only = None if only is None else set(only)
    unknown = (only or set()) - set(names)
    if unknown:
        raise ValueError(f"unknown arm(s) {sorted(unknown)}: choose from {names}")
    prepared = Prepared({a.name: a for a in arms})
    skip_kinds = set(skip_kinds)
    # one arm at a time (optimize's screen builds them so): no bar counting the whole catalogue for it
    for arm in tqdm(arms, desc="building arms", leave=False, disable=only is not None and len(only) <= 1):
        if arm.skip_reason is not None:
            prepared.not_run[arm.name] = (NOT_AVAILABLE, arm.skip_reason)
        elif not arm.baseline and (arm.kind in skip_kinds or (only is not None and arm.name not in only)):
            why = (f"skipped in this run (--skip {arm.kind})" if arm.kind in skip_kinds
                   else "skipped in this run (not among the arms asked for)")
            prepared.not_run[arm.name] = (SKIPPED, f"{why}; {arm.notes}" if arm.notes else why)
        else:
            start = time.perf_counter()
            try:
                built = _in_process(arm, recipe) if isolate else arm.build(ctx)
            except Exception as exc:  # noqa: BLE001 - one arm failing (missing kernel, export error) hides no other
                prepared.not_run[arm.name] = (FAILED, f"build failed: {type(exc).__name__}: {exc}".strip())
                ctx.log(f"  {arm.name}: build failed: {type(exc).__name__}: {exc}")
                continue
            built.meta.setdefault("build_seconds", round(time.perf_counter() - start, 2))
            if arm.records:
                _record_calls(built, ctx.cache.setdefault("results", {}).setdefault(arm.name, []))
            prepared.built[arm.name] = built
            ctx.log(f"  built {arm.name} in {built.meta['build_seconds']:.1f}s")
    return prepared


def time_arms(built: dict[str, BuiltArm], rounds: int = 5, seconds: float | None = None, calls_per_turn: int = 3,
              warmup: int = 3, shuffle_seed: int | None = 0, threads: int | None = None,
              device: str = "cpu", min_rounds: int | None = None,
              references: dict | None = None) -> TimedRun:
    """Time the built arms interleaved, each with the same ``warmup`` untimed calls, the order shuffled (seeded) or
    rotated every round; an arm whose call raises leaves the run with its reason in ``errors``. ``min_rounds``: the
    fewest rounds a ``seconds`` budget runs (default ``measure.interleaved.MIN_ROUNDS``). ``references``: name ->
    a zero-argument call timed in the same rounds as one more arm (e.g. ``measure.roofline.ReadProbe``: the device's
    read bandwidth at the arms' moments); their timings come back in ``TimedRun.reference``."""
    from workbench.measure.interleaved import MIN_ROUNDS, time_interleaved

    references = references or {}
    clash = set(references) & set(built)
    if clash:
        raise ValueError(f"reference names {sorted(clash)} are also arm names: name the references apart")
    errors: dict[str, str] = {}
    first: dict[str, float] = {}
    timing = time_interleaved({**{name: b.call for name, b in built.items()}, **references}, rounds=rounds,
                              seconds=seconds, threads=threads, calls_per_turn=calls_per_turn, warmup=warmup,
                              device=device, shuffle_seed=shuffle_seed, rotate=True, errors=errors, first_ms=first,
                              min_rounds=MIN_ROUNDS if min_rounds is None else min_rounds)
    reference = {name: timing.pop(name) for name in references if name in timing}
    return TimedRun(timing, errors, first, warmup, reference)


@dataclass
class Comparison:
    """What :func:`compare` found: one row per arm (catalogue order), the pick, and both ratios of the winner."""

    rows: list[dict]
    pick: Pick
    baseline: str
    selection_speedup: float | None        # winner vs baseline in the selection run (all arms)
    confirmed_speedup: float | None        # winner vs baseline in a fresh run of those two alone (the headline)
    selection: TimedRun
    confirmation: TimedRun | None
    quality_measured: bool
    prepared: Prepared = field(repr=False, default=None)
    qualities: dict = field(repr=False, default_factory=dict)   # name -> QualityResult (selection split)
    reports: dict = field(repr=False, default_factory=dict)     # name -> QualityResult (report split)

    def row(self, name: str) -> dict:
        return next(r for r in self.rows if r["arm"] == name)

    @property
    def built(self) -> dict[str, BuiltArm]:
        return self.prepared.built

    def close(self) -> None:
        """Release every built arm (processes, servers); :func:`compare` does it unless ``keep=True``."""
        self.prepared.close()

    def __enter__(self) -> "Comparison":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quality(built: dict[str, BuiltArm], baseline: str, attr: str) -> tuple[dict, dict[str, str]]:
    """Each arm's quality (``attr``: "quality" or "report_quality"), errors as reasons. Baseline first."""
    results, errors = {}, {}
    for name in [baseline] + [n for n in built if n != baseline]:
        fn = getattr(built[name], attr)
        if fn is None:
            continue
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - a quality failure makes that arm ineligible, not the run fail
            errors[name] = f"{attr.replace('_', ' ')} failed: {type(exc).__name__}: {exc}"
    return results, errors


def compare(arms: Iterable[Arm], ctx: ArmContext, tolerance: float, measure_quality: bool = True,
            skip_kinds: Iterable[str] = (), only: Iterable[str] | None = None, rounds: int = 5,
            seconds: float | None = None, calls_per_turn: int = 3, warmup: int = 3, shuffle_seed: int | None = 0,
            confirm_rounds: int | None = None, confirm_seconds: float | None = None, isolate: bool = False,
            recipe: tuple[str, str, dict] | None = None, isa: dict | None = None, keep: bool = False,
            references: dict | None = None) -> Comparison:
    """Build, select, confirm.

    Args:
        arms, ctx: the catalogue's arms (exactly one baseline) and the context their builds share.
        tolerance: the largest acceptable quality drop, in the rows' drop unit (points of accuracy).
        measure_quality: False (``--skip-ppl``): no quality is measured and the pick is flagged unchecked.
        skip_kinds, only: arms the user leaves out (rows "skipped").
        rounds, seconds, calls_per_turn, warmup, shuffle_seed: the selection run (``time_arms``).
        confirm_rounds, confirm_seconds: the confirmation run (default: the selection's).
        isolate, recipe: each arm in its own process (see the module docstring).
        isa: the ISA summary stamped on every row.
        keep: leave the built arms open (``Comparison.built``; call ``close()``), e.g. to profile the winner.
        references: calls timed in the selection run beside the arms (``time_arms``), in ``selection.reference``.
    """
    arms = list(arms)
    prepared = build_arms(arms, ctx, skip_kinds, only, isolate, recipe)
    baseline = next(a.name for a in arms if a.baseline)
    try:
        if baseline not in prepared.built:
            raise RuntimeError(f"the baseline arm {baseline!r} did not build: {prepared.not_run[baseline][1]}")
        settings = dict(calls_per_turn=calls_per_turn, warmup=warmup, shuffle_seed=shuffle_seed, threads=ctx.threads,
                        device=ctx.device)
        ctx.log(f"selection run: {len(prepared.built)} arms interleaved")
        selection = time_arms(prepared.built, rounds=rounds, seconds=seconds, references=references, **settings)
        if baseline not in selection.timing:
            raise RuntimeError(f"the baseline arm {baseline!r} crashed while timed: {selection.errors[baseline]}")
        alive = {n: b for n, b in prepared.built.items() if n in selection.timing}
        qualities, q_errors = _quality(alive, baseline, "quality") if measure_quality else ({}, {})
        reports, r_errors = _quality(alive, baseline, "report_quality") if measure_quality else ({}, {})
        quality_measured = measure_quality and baseline in qualities
        rows = _rows(arms, prepared, selection, baseline, qualities, q_errors, reports, r_errors, isa, tolerance,
                     quality_measured)
        chosen = pick(rows, tolerance, quality_measured)
        if measure_quality and not quality_measured:
            why = q_errors.get(baseline, "the baseline arm has no quality function")
            chosen = Pick(chosen.row, False, f"{UNCHECKED} ({why})")
        selection_speedup = confirmed = confirmation = None
        if chosen.row is not None:
            selection_speedup = selection.ratio(baseline, chosen.arm)
            if chosen.arm == baseline:
                confirmed = 1.0        # the baseline against itself: nothing to confirm
            else:
                ctx.log(f"confirmation run: {chosen.arm} vs {baseline}, fresh timings")
                confirmation = time_arms({baseline: prepared.built[baseline], chosen.arm: prepared.built[chosen.arm]},
                                         rounds=confirm_rounds or rounds,
                                         seconds=seconds if confirm_seconds is None else confirm_seconds, **settings)
                confirmed = confirmation.ratio(baseline, chosen.arm)
                if chosen.arm in confirmation.errors:
                    chosen.row["reason"] += f"; confirmation run: {confirmation.errors[chosen.arm]}"
        result = Comparison(rows, chosen, baseline, selection_speedup, confirmed, selection, confirmation,
                            quality_measured, prepared, qualities, reports)
    except BaseException:
        prepared.close()
        raise
    if not keep:
        prepared.close()
    return result


def _rows(arms, prepared, selection, baseline, qualities, q_errors, reports, r_errors, isa, tolerance,
          quality_measured) -> list[dict]:
    rows = []
    base_t = selection.timing[baseline]
    for arm in arms:
        if arm.name in prepared.not_run:
            status, reason = prepared.not_run[arm.name]
            rows.append(arm_row(arm, status, reason, isa=isa))
            continue
        if arm.name in selection.errors:
            rows.append(arm_row(arm, FAILED, f"crashed while timed: {selection.errors[arm.name]}",
                                meta=prepared.built[arm.name].meta, isa=isa))
            continue
        notes = [e[arm.name] for e in (q_errors, r_errors) if arm.name in e]
        rows.append(arm_row(arm, MEASURED, "; ".join([arm.reason] + notes), timing=selection.timing[arm.name],
                            baseline_timing=base_t, first_ms=selection.first_ms.get(arm.name),
                            quality=qualities.get(arm.name), base_quality=qualities.get(baseline),
                            report_quality=reports.get(arm.name), base_report_quality=reports.get(baseline),
                            meta=prepared.built[arm.name].meta, isa=isa, tolerance=tolerance,
                            quality_measured=quality_measured))
    return rows


__all__ = ["compare", "build_arms", "time_arms", "Comparison", "Prepared", "TimedRun"]
