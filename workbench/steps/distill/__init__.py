"""Knowledge distillation as a step: student shape (``student``), data (``data``), recipes per task kind
(``recipes``), the training loop (``loop``) and stacking with int8 (``quant``). ``step`` registers ``DistillConfig``."""
from workbench.steps.distill.step import DistillConfig, distill_step, family_of, training_callback

__all__ = ["DistillConfig", "distill_step", "family_of", "training_callback"]
