"""Knowledge-distillation helpers behind ``workbench.steps.distill``: student building, transfer sets, training loop."""
