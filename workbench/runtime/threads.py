"""Intra-op thread counts: every runner takes its count when it is created and runs at it.

A count read from a global at timing time can differ from the one a runner was built with (an ONNX Runtime session
fixes its intra-op threads when it is created), so two arms could run at different counts under one label. Here a
runner's count is decided once, at creation (:func:`default_threads` when none is given), kept on the runner as
``runner.threads`` and applied around its calls (:func:`torch_threads`); measurement asks the runner for it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def check_threads(threads: int | None) -> int | None:
    """``threads`` as an int (None stays None); a count below 1 is a clear error."""
    if threads is None:
        return None
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads={threads!r}: use a positive number of intra-op threads (or None for the default)")
    return int(threads)


def default_threads() -> int:
    """The count a runner created without one takes: ``WORKBENCH_THREADS`` if set, else torch's count right now."""
    import torch

    return check_threads(int(os.environ.get("WORKBENCH_THREADS", 0)) or None) or torch.get_num_threads()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with torch's intra-op count at ``threads`` (None: as it is); the previous count comes back after.

    Yields the count the block runs at. Setting it only when it differs keeps a call already at its count free of
    any overhead (measurement holds the count for a whole timing run, so the per-call check finds it set).
    """
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield before
        return
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


__all__ = ["check_threads", "default_threads", "torch_threads"]
