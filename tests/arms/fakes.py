"""Cheap fake arms for the runner's tests: each call reports its own time (``Timed``), so ratios are exact."""
from __future__ import annotations

from workbench.arms.base import Arm, BuiltArm
from workbench.measure.interleaved import Timed
from workbench.tasks.base import QualityResult


def quality(correct: list[int]) -> QualityResult:
    value = sum(correct) / len(correct)
    return QualityResult("accuracy", value, value, value, len(correct), per_example=tuple(correct))


def fake_arm(name: str, ms, correct=None, kind: str = "int8", baseline: bool = False, calls: list | None = None,
             on_quality=None, skip_reason=None, build_error=None, crash_after=None) -> Arm:
    """An arm whose call takes ``ms()`` (a callable, or a number) milliseconds by its own account; every call is
    appended to ``calls``; ``quality()`` scores ``correct`` and then runs ``on_quality``."""
    def build(ctx):
        if build_error:
            raise RuntimeError(build_error)
        count = [0]

        def call():
            count[0] += 1
            if crash_after is not None and count[0] > crash_after:
                raise RuntimeError("kernel crashed")
            if calls is not None:
                calls.append(name)
            return Timed(ms() if callable(ms) else ms, name)

        def q():
            if on_quality:
                on_quality()
            return quality(correct)

        return BuiltArm(call=call, quality=q if correct is not None else None, meta={"compile_seconds": None})

    return Arm(name, "baseline" if baseline else kind, build, skip_reason, baseline, notes=f"{name} notes")
