"""Distilled arms: the teacher, its knowledge-distilled student, and the student stacked with every CPU arm.

- :func:`student_arms`: ``teacher-fp32`` (the baseline), ``student-fp32`` (the KD student, ``steps.distill``) and
  ``student+<arm>`` for each non-baseline arm of :func:`workbench.arms.cpu.cpu_arms` (same step chain applied to the
  student instead of the teacher, same skip reason, same kind, so ``--skip openvino`` skips ``student+ov-*`` too).
  The student is trained ONCE per run: the first student arm to build trains it and keeps it in ``ctx.cache``; every
  other student arm starts from that cached variant. Each arm's quality runs on its own variant and the runner pairs
  it with the teacher's on the same examples (``arms.rows``), so retention and the drop CI come from the one row
  builder.
- :func:`catalogue`: ``(arms, ctx)`` from plain arguments, like ``arms.cpu.catalogue``.
- :func:`training_seconds_estimate`: how long training the student should take here (the optimiser includes the
  student arms as candidates when it fits the budget).

Arms that share one trained student must build in one process (``compare(..., isolate=False)``, the default): a
child process per arm would train its own student.

Example:
    >>> arms, ctx = catalogue("text-classification", batch=1, seq=128, threads=2)    # doctest: +SKIP
    >>> result = compare(arms, ctx, tolerance=3.4)
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from workbench.arms.base import Arm, ArmContext, BuiltArm

TEACHER, STUDENT, PREFIX = "teacher-fp32", "student-fp32", "student+"


def distill_config(**distill_kw):
    """The student recipe: ``DistillConfig.half_depth`` (DistilBERT's: half the layers, KD + labels) with overrides."""
    from workbench.steps.distill import DistillConfig

    return DistillConfig.half_depth(**distill_kw)


def student_variant(ctx: ArmContext, config) -> Any:
    """The KD student of ``ctx.base`` (the teacher) trained with ``config``: trained on the first call of a run, then
    read from ``ctx.cache``. It runs at ``ctx.threads`` and holds the timing batch as its ``example_inputs`` (compile
    and PT2E warm up on it), like the teacher of ``arms.cpu.context_for``."""
    from workbench.core import apply
    from workbench.runtime import with_threads

    key = ("distill", ctx.base.id, repr(config))
    if key not in ctx.cache:
        ctx.log(f"  training the student ({config.num_layers or 'half the'} layers, alpha={config.alpha}) ...")
        student = with_threads(apply(ctx.base, config), ctx.threads)
        ctx.cache[key] = dataclasses.replace(student, meta={**student.meta, "example_inputs": ctx.inputs})
        ctx.log(f"  student trained in {student.meta.get('step_seconds')} s")
    return ctx.cache[key]


@dataclass(frozen=True)
class OnStudent:
    """Build of a student arm: the (cached) student as the base of ``build`` (a CPU arm's build; None: the student
    itself). The context passed on shares ``ctx.cache``, so the ONNX export of the student is made once for every
    ORT / OpenVINO arm, as the teacher's is in the CPU catalogue."""

    config: Any
    build: Callable[[ArmContext], BuiltArm] | None = None

    def __call__(self, ctx: ArmContext) -> BuiltArm:
        from workbench.arms.cpu import built_variant
        from workbench.steps.distill import family_of

        student = student_variant(ctx, self.config)
        on_student = dataclasses.replace(ctx, base=student)
        built = built_variant(student, ctx) if self.build is None else self.build(on_student)
        built.meta.update(distill_seconds=student.meta.get("step_seconds"),
                          family=family_of(built.variant.lineage) if built.variant is not None else None)
        return built


def student_arms(isa: dict | None = None, calibration: str | None = None, **distill_kw) -> list[Arm]:
    """The teacher baseline, the KD student and the student stacked with each CPU arm for ``isa`` (this CPU when None).

    Args:
        isa, calibration: as :func:`workbench.arms.cpu.cpu_arms` (the static int8 arms need a calibration set; the
            student shares the teacher's tokenizer, so the teacher's calibration set fits it).
        distill_kw: ``DistillConfig.half_depth`` overrides (``num_layers``, ``epochs``, ``max_steps``, ...).

    Example:
        >>> [a.name for a in student_arms(num_layers=2)][:4]                            # doctest: +SKIP
        ['teacher-fp32', 'student-fp32', 'student+torch-int8-dynamic', 'student+ort-int8-dynamic']
    """
    from workbench.arms.cpu import StepChain, cpu_arms

    config = distill_config(**distill_kw)
    shape = f"{config.num_layers} layers" if config.num_layers else "half the teacher's layers"
    student_notes = f"KD student ({shape}, T={config.temperature}, alpha={config.alpha}), fp32 eager"
    arms = [Arm(TEACHER, "baseline", StepChain(()), None, baseline=True, notes="baseline: the teacher, eager fp32"),
            Arm(STUDENT, "distill", OnStudent(config), None, notes=student_notes)]
    cpu = cpu_arms(isa, calibration)
    teacher_arm = next(a.name for a in cpu if a.baseline)
    for arm in cpu:
        if arm.baseline:
            continue
        # an arm that compiles the eager fp32 model compiles the eager student here
        twin = None if arm.twin is None else STUDENT if arm.twin == teacher_arm else PREFIX + arm.twin
        arms.append(Arm(PREFIX + arm.name, arm.kind, OnStudent(config, arm.build), arm.skip_reason,
                        notes=f"KD student + {arm.notes}" if arm.notes else "KD student", steps=arm.steps, twin=twin))
    return arms


def catalogue(task: str = "text-classification", batch: int = 1, seq: int = 128, threads: int | None = None,
              eval_limit: int | None = None, calib_examples: int = 0, out_dir: str | None = None,
              report_split: str | None = "test", isa: dict | None = None, log=None, **distill_kw) -> tuple:
    """``(student_arms, ctx)`` for a task (or a built-in task kind) timed at ``batch x seq``: quality chosen on
    validation, reported on ``report_split``; ``calib_examples``: the static int8 arms' calibration set (0: they say
    they need one). (``batch``, not ``batch_size``: that name is the student's training batch in ``distill_kw``.)"""
    from workbench.arms.cpu import calibration_set, cpu_context
    from workbench.tasks import get_task
    from workbench.util.files import artifacts_root

    task_obj = get_task(task) if isinstance(task, str) else task
    calibration = None
    if calib_examples:
        calibration, _why = calibration_set(task_obj, calib_examples, out_dir or artifacts_root() / "calibration-sets")
    ctx = cpu_context(task_obj, batch, seq, threads, eval_limit, out_dir, report_split, log=log)
    return student_arms(isa, calibration and str(calibration), **distill_kw), ctx


def _median_seconds(fn, calls: int = 2) -> float:
    fn()                                  # warm-up: allocation, first-call paths
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_seconds_estimate(task, config=None, **distill_kw) -> float:
    """Seconds ``apply(task.baseline(), config)`` should take here (``config``: a ``DistillConfig``, default
    ``DistillConfig.half_depth(**distill_kw)``), at torch's current thread count, measured rather than guessed:

        scoring     teacher forward over the transfer set (classifiers: once, the logits are cached;
                    causal LMs: once per training batch)
      + training    optimiser steps x batch size x (student forward + backward + AdamW, per example)
      + validation  validations x validation examples x student forward (per example)

    where optimiser steps = min(epochs x ceil(transfer examples / batch size), max_steps), the transfer set being the
    labelled train split plus the extra unlabelled text when alpha > 0 (LMs: token blocks), validations one per epoch
    or every ``eval_every`` steps, plus the final one. The three per-example costs are timed here on one batch of the
    transfer set at its median length (classifiers) or block length (LMs), with a freshly built student (median of 2
    calls after a warm-up): a few seconds. Early stopping (``patience``) can only make the run shorter, so this is an
    upper estimate of the training, excluding the tokenisation of the transfer text.

    Args:
        task: a task or a built-in task name ("text-classification", "causal-lm").
        config: the recipe (``arms.distilled_llm`` passes its LM one); None: :func:`distill_config`.
        distill_kw: the same overrides as :func:`student_arms` (when ``config`` is None).
    """
    import torch

    from workbench.steps.distill import recipes
    from workbench.steps.distill.step import teacher_tokenizer
    from workbench.steps.distill.student import build_student, teacher_kind
    from workbench.tasks import get_task

    config = distill_config(**distill_kw) if config is None else config
    task = get_task(task) if isinstance(task, str) else task
    teacher = task.baseline().model.eval()
    tokenizer, _path = teacher_tokenizer(teacher)
    t_cfg = teacher.config
    layers = config.num_layers or max(1, (t_cfg.num_hidden_layers + 1) // 2)
    student, _init = build_student(teacher, layers, config.hidden_size or t_cfg.hidden_size, config.layer_map,
                                   config.seed)
    size = recipes.SIZE[teacher_kind(teacher)](task.name, t_cfg, tokenizer, config)
    forward = lambda model: model(**size.batch).logits  # noqa: E731
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr)

    def train_step():
        student.train()
        forward(student).float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with torch.inference_mode():
        teacher_fwd = _median_seconds(lambda: forward(teacher)) / config.batch_size
        student_fwd = _median_seconds(lambda: forward(student.eval())) / config.batch_size
    train_per_example = _median_seconds(train_step) / config.batch_size
    per_epoch = math.ceil(size.transfer / config.batch_size)
    steps = min(config.epochs * per_epoch, config.max_steps or math.inf)
    validations = (steps // config.eval_every if config.eval_every else math.ceil(steps / per_epoch)) + 1
    scored = 0 if config.alpha <= 0 else steps * config.batch_size if size.teacher_scores_every_step \
        else size.transfer
    return round(scored * teacher_fwd + steps * config.batch_size * train_per_example
                 + validations * size.validation * student_fwd, 1)


__all__ = ["student_arms", "catalogue", "training_seconds_estimate", "student_variant", "distill_config",
           "OnStudent", "TEACHER", "STUDENT", "PREFIX"]
