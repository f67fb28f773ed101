"""Number checks and formatting for result rows (which mix numbers, None, NaN and strings)."""
from __future__ import annotations

import math


def is_number(value) -> bool:
    """A finite int or float, not a bool: what can go on a plot axis or into a Pareto front."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_value(value, digits: int = 4) -> str:
    """``-`` for None, ``digits`` significant digits for floats, ``str`` for the rest (tables, cards, reports)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


__all__ = ["is_number", "format_value"]
