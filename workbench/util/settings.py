"""Switches read from the environment, in one place so every caller reads them the same way."""
from __future__ import annotations

import os


def small_mode() -> bool:
    """``WORKBENCH_SMALL=1`` (CI, quick demos) shrinks the work (eval examples, timing budgets, rounds) through the
    same code paths; any value but empty or ``0`` turns it on."""
    return os.environ.get("WORKBENCH_SMALL", "") not in ("", "0")


__all__ = ["small_mode"]
