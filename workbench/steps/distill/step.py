"""Knowledge distillation: train a shallower (and/or narrower) student to match the input variant, its teacher.

Loss ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(labels)`` per example (classifiers)
or per token (causal LMs, on the corpus). The student derives from the teacher's config and starts from the
teacher's layers where shapes allow, keeps its tokenizer, and is chosen on validation (early stopping).
``alpha=0`` trains the same student from the same init on labels only: the no-KD ablation.

Example:
    >>> from workbench.core import apply                                        # doctest: +SKIP
    >>> teacher = get_task("text-classification").baseline()
    >>> student = apply(teacher, DistillConfig.half_depth())
    >>> ablation = apply(teacher, DistillConfig.half_depth().no_kd())
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.runtime.torch_runner import TorchRunner

_CALLBACKS: list = []


@dataclass(frozen=True)
class DistillConfig:
    """Student shape and training recipe.

    Args:
        num_layers: student depth (None: half the teacher's, rounded up).
        hidden_size: student width (None: the teacher's; smaller widths cannot copy teacher weights).
        layer_map: teacher layer each student layer starts from (None: evenly spaced, first and last).
        temperature / alpha: KD temperature T and weight of the KD term (0 = labels only, 1 = KD only).
        epochs / lr / batch_size / seed: training; deterministic for a given seed.
        patience: validations without improvement before stopping; eval_every: steps between them (None: per epoch).
        max_steps: hard cap on optimiser steps. max_length: tokens per example (LM: tokens per block).
        train_data: JSONL/CSV (``text``, ``label``) for a user's teacher (None: the demo task's train split).
        extra_data: unlabelled text scored by the teacher ("demo-corpus" or a file); used only when alpha > 0.
        student_dir: start from this HF model instead of the teacher's layers (same tokenizer required).
    """

    num_layers: int | None = None
    hidden_size: int | None = None
    layer_map: tuple[int, ...] | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    epochs: int = 3
    lr: float = 3e-4
    batch_size: int = 32
    seed: int = 0
    patience: int = 2
    eval_every: int | None = None
    max_steps: int | None = None
    max_length: int = 128
    train_data: str | None = None
    extra_data: str | None = None
    student_dir: str | None = None

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha}: use a weight in [0, 1] (0 = labels only, 1 = KD only)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature}: use T > 0 (typical 1-8)")
        for name in ("epochs", "batch_size", "patience", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        for name in ("num_layers", "hidden_size", "max_steps", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1 (or None for the default)")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr}: the learning rate must be positive")
        if self.layer_map is not None:
            object.__setattr__(self, "layer_map", tuple(self.layer_map))

    @classmethod
    def half_depth(cls, **overrides) -> "DistillConfig":
        """DistilBERT's recipe: half the layers, same width, KD + labels."""
        return cls(**{"alpha": 0.5, "temperature": 2.0, **overrides})

    @classmethod
    def lm_draft(cls, **overrides) -> "DistillConfig":
        """A small causal-LM draft for speculative decoding: token-level KD on the corpus, capped steps."""
        return cls(**{"alpha": 0.9, "temperature": 1.0, "batch_size": 16, "max_steps": 300, "eval_every": 100,
                      **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "DistillConfig":
        """Seconds-long run for tests and smoke checks."""
        return cls(**{"epochs": 1, "max_steps": 8, "batch_size": 8, "max_length": 32, **overrides})

    def no_kd(self) -> "DistillConfig":
        """The ablation: same student, init and schedule, labels only (alpha=0, so no extra unlabelled text)."""
        return dataclasses.replace(self, alpha=0.0)


@contextlib.contextmanager
def training_callback(fn):
    """Within the block, ``fn(event, step, value)`` sees every training loss and validation score (live plots).

    Example:
        >>> with training_callback(lambda e, s, v: print(e, s, v)):    # doctest: +SKIP
        ...     student = apply(teacher, DistillConfig.tiny())
    """
    _CALLBACKS.append(fn)
    try:
        yield fn
    finally:
        _CALLBACKS.remove(fn)


def _notify(event: str, step: int, value: float) -> None:
    for fn in list(_CALLBACKS):
        fn(event, step, value)


def family_of(lineage) -> str:
    """Candidate family of a variant or result row: its distilled ancestor, so distil -> quantise -> export share one.

    ``lineage`` is ``variant.lineage`` or a row's ``"lineage"``; "baseline" when no distill step is in it.
    """
    import hashlib
    import json

    steps = [list(x) for x in lineage]
    cut = next((i for i, (name, _cfg) in enumerate(steps) if name == "distill"), None)
    if cut is None:
        return "baseline"
    key = hashlib.sha256(json.dumps(steps[:cut + 1], sort_keys=True, default=str).encode()).hexdigest()[:8]
    cfg = steps[cut][1]
    return f"distill-{'nokd' if cfg.get('alpha') == 0 else 'kd'}-{key}"


def teacher_tokenizer(teacher: torch.nn.Module):
    """The tokenizer saved beside the teacher's weights (HF ``name_or_path``): the student reuses it."""
    from workbench.tasks.hf_loading import load_tokenizer

    path = getattr(teacher, "name_or_path", "") or getattr(teacher.config, "_name_or_path", "")
    if not path:
        raise ValueError("the teacher was not loaded from a directory, so its tokenizer is unknown: "
                         "load it with get_task(..., model_dir=DIR).baseline()")
    return load_tokenizer(path), path


@register_step("distill", DistillConfig)
def distill_step(teacher: Variant, config: DistillConfig) -> Variant:
    """The registered step: everything is validated before any training starts (see module docstring)."""
    from workbench.steps.distill import recipes
    from workbench.steps.distill.student import build_student, load_student_dir, teacher_kind

    require_torch_module(teacher, "distill", "apply it to task.baseline(), before export or quantisation")
    if teacher.precision != "fp32" or teacher.device != "cpu":
        raise ValueError(f"distill trains on CPU in fp32; the teacher is {teacher.device}/{teacher.precision}: "
                         "use task.baseline('cpu', 'fp32')")
    model = teacher.model.eval()
    kind = teacher_kind(model)
    tokenizer, tok_dir = teacher_tokenizer(model)
    t_cfg = model.config
    layers = config.num_layers or max(1, (t_cfg.num_hidden_layers + 1) // 2)
    hidden = config.hidden_size or t_cfg.hidden_size
    if config.student_dir:
        student, init = load_student_dir(config.student_dir, model, tokenizer), {"init": config.student_dir}
    else:
        if layers > t_cfg.num_hidden_layers or hidden > t_cfg.hidden_size:
            raise ValueError(f"student {layers}x{hidden} is not smaller than the teacher "
                             f"{t_cfg.num_hidden_layers}x{t_cfg.hidden_size}: pick fewer layers or a smaller width")
        student, init = build_student(model, layers, hidden, config.layer_map, config.seed)
    job = recipes.PREPARE[kind](teacher.task, model, tokenizer, config)  # data checks and teacher scoring, before training
    history = job.train(student, config, _notify)
    student.eval()
    s_cfg = student.config
    name = f"distilled-{s_cfg.num_hidden_layers}x{s_cfg.hidden_size}" + ("-nokd" if config.alpha == 0 else "")
    meta = {"teacher_id": teacher.id, "teacher_layers": t_cfg.num_hidden_layers, "teacher_hidden": t_cfg.hidden_size,
            "student_layers": s_cfg.num_hidden_layers, "student_hidden": s_cfg.hidden_size, "kind": kind,
            "tokenizer_dir": str(tok_dir), "transfer": job.facts, **init, "history": history}
    runner_names = getattr(teacher.runner, "input_names", None)
    return Variant(name=name, task=teacher.task, backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(student, "cpu", runner_names), model=student, meta=meta)
