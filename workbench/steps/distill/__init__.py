"""Knowledge distillation as a step: student shape (``student``), data (``data``), recipes per task kind
(``recipes``) and the training loop (``loop``). ``step`` registers ``DistillConfig``. Stacking a student with int8,
bf16, compile or OpenVINO is ``workbench.arms.distilled`` (the student through every CPU arm)."""
from workbench.steps.distill.step import DistillConfig, distill_step, family_of, training_callback

__all__ = ["DistillConfig", "distill_step", "family_of", "training_callback"]
