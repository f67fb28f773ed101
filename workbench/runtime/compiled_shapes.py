"""Quality passes reuse the shapes a compiled runner has already compiled instead of compiling new ones.

Inductor compiles a graph per input shape, and a compilation costs seconds (a PT2E int8 graph with freezing: ~5 s on
2 cores), while an evaluation feeds batches of every length the split holds: a quality pass of a compiled arm was
mostly compilations. Inside :func:`reuse_compiled_shapes`, a runner that supports it runs a batch whose shape is not
compiled yet in an already-compiled one (rows in chunks, positions padded and masked) when one is large enough, and
compiles as usual otherwise. Outside it (timing, sweeps, serving) every shape is run as itself, so a sweep point at
batch 32 times a batch-32 graph.

Example:
    >>> from workbench.runtime.compiled_shapes import reuse_compiled_shapes, reusing_compiled_shapes
    >>> reusing_compiled_shapes()
    False
    >>> with reuse_compiled_shapes():
    ...     reusing_compiled_shapes()
    True
"""
from __future__ import annotations

import contextlib
import contextvars

_REUSE = contextvars.ContextVar("workbench_reuse_compiled_shapes", default=False)


@contextlib.contextmanager
def reuse_compiled_shapes():
    """Within the block, compiled runners prefer a compiled shape to compiling a new one (quality passes only)."""
    token = _REUSE.set(True)
    try:
        yield
    finally:
        _REUSE.reset(token)


def reusing_compiled_shapes() -> bool:
    return _REUSE.get()


__all__ = ["reuse_compiled_shapes", "reusing_compiled_shapes"]
