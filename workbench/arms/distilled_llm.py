"""Distilled LM arms: a causal LM's knowledge-distilled student through the LLM decode arms (``arms.llm``).

- :func:`lm_student_arms`: ``student+<arm>`` for every LLM decode arm (``student+hf-generate-fp32`` is the plain
  student; ``student+fast-loop-int4-wo`` the student's int4 weights under the fast loop, ...), with that arm's kind,
  skip reason and notes. The teacher's own baseline stays the comparison's baseline: every student arm's perplexity
  increase is paired against the teacher's on the same blocks.
- :func:`lm_student_config`: the recipe, ``DistillConfig.lm_draft`` (half the teacher's layers at its width, started
  from its layers; token-level KD on the corpus, optimiser steps capped): a student in minutes, not hours.
- :func:`training_seconds_estimate`: how long training it should take here (the optimiser admits the student arms
  only when that fits the budget).

The student is trained once per run (the first student arm to build trains it; ``ctx.cache`` keeps it). The student
arms then build on a context of their own: the LLM arms keep their quantised models, ONNX files and reference logits
in ``ctx.cache`` under keys that do not name the model ("int4", "onnx"), so the student's must not meet the teacher's.
That context reads every option not about the model from the teacher's context as it is at call time
(``collections.ChainMap``): the blocks quality is measured on are the ones the run is currently scoring.
"""
from __future__ import annotations

import dataclasses
from collections import ChainMap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workbench.arms.base import Arm, ArmContext, BuiltArm
from workbench.arms.distilled import PREFIX


def lm_student_config(**distill_kw):
    """``DistillConfig.lm_draft`` (half depth, same width, KD-weighted, capped steps) with overrides."""
    from workbench.steps.distill import DistillConfig

    return DistillConfig.lm_draft(**distill_kw)


def lm_student(ctx: ArmContext, config):
    """The KD student of the run's task baseline (the teacher, trained on CPU in fp32), trained on the first call of
    a run and then read from ``ctx.cache``: ``(student variant, its model on the context's device)``."""
    from workbench.core import apply

    key = ("distill-lm", repr(config))
    if key not in ctx.cache:
        if ctx.task is None:
            raise ValueError("an LM student needs the context's task (its corpus and tokenizer): build the context "
                             "with decode_context(..., task=task)")
        ctx.log(f"  training the LM student ({config.num_layers or 'half the'} layers, at most "
                f"{config.max_steps} steps) ...")
        student = apply(ctx.task.baseline("cpu"), config)
        ctx.cache[key] = (student, student.model.to(ctx.device).eval())
        ctx.log(f"  LM student trained in {student.meta.get('step_seconds')} s")
    return ctx.cache[key]


def student_context(ctx: ArmContext, config) -> ArmContext:
    """The context the student arms build on (one per run and recipe): the student as the fp32 parent, its own cache
    and ONNX folder, every other option read through to ``ctx.options``."""
    from workbench.arms.llm import _reference_logits

    key = ("distill-lm-context", repr(config))
    if key not in ctx.cache:
        _student, model = lm_student(ctx, config)
        out = ctx.options.get("out")
        cache = {}
        if ctx.options.get("quality") == "agreement":   # agreement is with the TEACHER's fp32 logits, not the student's
            cache["ref_logits"] = _reference_logits(ctx)
        own = {"model": model, "out": str(Path(out) / "student") if out else None}
        ctx.cache[key] = dataclasses.replace(ctx, cache=cache, options=ChainMap(own, ctx.options))
    return ctx.cache[key]


@dataclass(frozen=True)
class OnLMStudent:
    """Build of a student arm: ``build`` (an LLM arm's) on the student's context."""

    config: Any
    build: Callable[[ArmContext], BuiltArm]

    def __call__(self, ctx: ArmContext) -> BuiltArm:
        from workbench.steps.distill import family_of

        student, _model = lm_student(ctx, self.config)
        built = self.build(student_context(ctx, self.config))
        built.meta.update(distill_seconds=student.meta.get("step_seconds"), family=family_of(student.lineage),
                          student_layers=student.meta.get("student_layers"))
        return built


def lm_student_arms(compile: bool = True, device: str = "cpu", batch: int = 1, **distill_kw) -> list[Arm]:
    """``student+<arm>`` for each LLM decode arm of :func:`workbench.arms.llm.llm_arms` (same kind, skip reason and
    notes); none is a baseline: the teacher's baseline arm is the comparison's.

    Example:
        >>> [a.name for a in lm_student_arms()][:2]                                       # doctest: +SKIP
        ['student+hf-generate-fp32', 'student+hf-static-compile-fp32']
    """
    from workbench.arms.llm import llm_arms

    config = lm_student_config(**distill_kw)
    shape = f"{config.num_layers} layers" if config.num_layers else "half the teacher's layers"
    # the student on the baseline's path is a candidate like any other: its kind is "distill", as the encoder's
    return [Arm(PREFIX + arm.name, "distill" if arm.baseline else arm.kind, OnLMStudent(config, arm.build),
                arm.skip_reason,
                notes=f"KD LM student ({shape}, at most {config.max_steps} steps) + {arm.notes}",
                records=arm.records)
            for arm in llm_arms(compile=compile, device=device, batch=batch)]


def training_seconds_estimate(task, **distill_kw) -> float:
    """Seconds training the student of :func:`lm_student_config` should take here (measured per-step costs, see
    ``arms.distilled.training_seconds_estimate``)."""
    from workbench.arms.distilled import training_seconds_estimate as estimate

    return estimate(task, config=lm_student_config(**distill_kw))


__all__ = ["lm_student_arms", "lm_student_config", "lm_student", "student_context", "training_seconds_estimate",
           "OnLMStudent"]
