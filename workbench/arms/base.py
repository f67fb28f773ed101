"""What an arm is: :class:`Arm` (a named way to run the model, and how to build it), :class:`BuiltArm` (the built arm:
one timed unit of work, the variant it times and the quality measured on that very variant) and :class:`ArmContext`
(what every build gets).

An arm is declared once in a catalogue (``arms.cpu``: CPU encoder arms by ISA; ``arms.llm``: LLM decode arms;
``arms.speculative``) under one name used by benchmarks, panels, the CLI and gpu_check, and measured by the one
runner (``arms.runner``). Building is lazy: a catalogue lists every arm, with ``skip_reason`` naming the ISA, device
or library fact when it cannot run here, and the runner builds only those that run.

Example:
    >>> def build(ctx):                                                      # doctest: +SKIP
    ...     variant = apply(ctx.base, CpuPrecisionConfig())
    ...     return BuiltArm(call=lambda: variant(ctx.inputs), variant=variant,
    ...                     quality=lambda: ctx.task.evaluate(variant, split="validation"))
    >>> Arm("torch-bf16", "bf16", build, notes="AVX512-BF16: bf16 dot products use vdpbf16ps")
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable


def missing_library(*names: str) -> str | None:
    """Why an arm cannot run for want of a library ("torchao is not installed here: pip install torchao"), else None.

    Catalogues put it in ``Arm.skip_reason`` (prefixed "not available here: ").
    """
    for name in names:
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed here: pip install {name}"
    return None


@dataclass(frozen=True)
class ArmContext:
    """What a build needs. One context is shared by every arm of a run, so ``cache`` shares common prefixes (an ONNX
    export that ORT and OpenVINO arms both start from is made once).

    Attributes:
        base: the baseline variant arms derive from (None where an arm builds its own model).
        inputs: the example inputs of one timed call (one batch; a prompt for decode arms).
        task: the task (its ``evaluate`` gives quality on a variant).
        threads: intra-op threads every arm runs with (None: torch's current count).
        device: "cpu" or "cuda".
        cache: shared between the arms' builds (key -> built object); a child process has its own.
        log: progress lines (a build that takes long says what it does).
        options: anything else a catalogue's builds read (calibration set, output folder, eval limit, splits...).
    """

    base: Any = None
    inputs: Any = None
    task: Any = None
    threads: int | None = None
    device: str = "cpu"
    cache: dict = field(default_factory=dict, compare=False)
    log: Callable[[str], None] = field(default=lambda message: None, compare=False)
    options: dict = field(default_factory=dict, compare=False)


@dataclass
class BuiltArm:
    """A built arm.

    Attributes:
        call: zero-argument; one timed unit of work (one batch inference, or one whole generation request). It may
            return a ``measure.interleaved.Timed`` when it times itself (an arm in another process does).
        variant: the exact Variant that ``call`` times, or None (no Variant: a raw callable, an arm in a process).
        quality: zero-argument, returns a ``QualityResult`` with ``per_example`` scores measured on THAT variant
            (through the compiled path where the arm is compiled) on the examples the winner is chosen on; None when
            the arm has no quality function.
        report_quality: like ``quality`` on held-out examples the figure is reported on (chosen on validation,
            reported on test); None: the selection quality is the reported one.
        meta: figures of the build (``compile_seconds``, ``build_seconds``, weight bytes, ...): copied into the row.
        close: releases what the arm holds (a process, a server); None when there is nothing to release.
    """

    call: Callable[[], Any]
    variant: Any = None
    quality: Callable[[], Any] | None = None
    report_quality: Callable[[], Any] | None = None
    meta: dict = field(default_factory=dict)
    close: Callable[[], None] | None = None

    def release(self) -> None:
        """Call ``close`` if there is one (safe to call twice)."""
        close, self.close = self.close, None
        if close is not None:
            close()


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison.

    Attributes:
        name: the one name of this arm across benchmarks, panels, the CLI and gpu_check (e.g. "ov-bf16").
        kind: "baseline", "int8", "bf16", "compile", "openvino", "decode", "weight-only", "speculative", ...
            (what a user skips with ``--skip KIND``).
        build: ``build(ctx) -> BuiltArm``; called only when the arm runs here.
        skip_reason: None when the arm runs here; else why not, naming the ISA / device / library fact
            ("no AMX/AVX512-BF16: bf16 would run emulated ...", "openvino is not installed here: pip install ...").
        baseline: the arm every ratio and quality drop is taken against (one per comparison).
        notes: why the arm is worth running here (the ISA path its kernels take), shown beside its row.
        steps: the step configs ``build`` applies in order to the baseline, when the arm is a step chain (CPU
            catalogue); () otherwise. Read by the step tick boxes and tests, never needed by the runner.
        records: the runner keeps what each call returns, warm-up calls first, in ``ctx.cache["results"][name]``
            (in the parent also when the arm runs in its own process: the child sends it back with its time), so
            figures such as an LLM request's TTFT / ITL come from the very calls that were timed.
        twin: the eager arm of the technique this one compiles (same weights, same precision; e.g. "torch-bf16"
            for "torch-compile-bf16"), or None. The optimize screen times the twin first and builds this arm only when
            the twin's speed-up times the most compiling has gained could still reach the contenders.
    """

    name: str
    kind: str
    build: Callable[[ArmContext], BuiltArm] | None = None
    skip_reason: str | None = None
    baseline: bool = False
    notes: str = ""
    steps: tuple = ()
    records: bool = False
    twin: str | None = None

    @property
    def applies(self) -> bool:
        """Whether the arm runs here (no skip reason)."""
        return self.skip_reason is None

    @property
    def reason(self) -> str:
        """Why it runs (``notes``) or why not (``skip_reason``): the text beside its row."""
        return self.notes if self.skip_reason is None else self.skip_reason

    @property
    def config(self) -> Any:
        """The arm's last step config, None for the baseline or an arm that is not a step chain."""
        return self.steps[-1] if self.steps else None


__all__ = ["Arm", "ArmContext", "BuiltArm", "missing_library"]
