"""Conversions between what callers pass (torch tensors, numpy arrays, lists) and what a backend takes."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array of ``value`` (a tensor is detached and copied to the host first)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


__all__ = ["to_numpy"]
