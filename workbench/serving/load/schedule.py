"""Arrival times and the one loop that sends each request at its scheduled time (plain or streamed).

- **Open loop.** Every send time is computed before the run on one absolute clock (``time.perf_counter()`` at start
  plus cumulative gaps from a seeded RNG); the loop sends each request at its time whatever is in flight.
- **No busy-waiting.** The loop sleeps to each send time and records how late it woke (``sent - scheduled``, the
  send lag) instead of spinning on the clock: a spin costs a core at a few hundred requests per second, on the CPU
  a CPU-bound model needs. asyncio's timer is ms-coarse (epoll rounds up), so the lag is typically 0..1 ms, and it is
  charged to the request: latency runs from the *scheduled* time (no coordinated omission).
- **Send lag after the connection is open.** A request's ``sent`` time is taken once its bytes are written on an
  open connection: a connection opened for it (every stream; a plain request when every pre-opened connection is
  busy) counts toward its lag.
- **Poisson given n.** ``arrival="poisson"`` draws n exponential gaps and rescales them so the n arrivals span
  exactly ``n / rate``: a Poisson process conditioned on its count, so the offered rate is the rate actually sent.
"""
from __future__ import annotations

import asyncio
import time

from workbench.serving.load.client import Connections, read_response, read_stream


def schedule(rate_per_s: float, n: int, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0):
    """Send offsets in seconds from the start (first at 0), mean gap exactly ``1/rate``.

    ``poisson``: exponential gaps; ``constant``: equal gaps; ``gamma``: gamma gaps with coefficient of variation
    ``burstiness`` (1 = Poisson, > 1 burstier, < 1 smoother). Random gaps are rescaled to mean ``1/rate``.
    """
    import numpy as np

    if rate_per_s <= 0 or n < 1:
        raise ValueError(f"rate_per_s ({rate_per_s}) must be > 0 and n ({n}) >= 1")
    rng = np.random.default_rng(seed)
    if arrival == "constant":
        gaps = np.ones(n)
    elif arrival == "poisson":
        gaps = rng.exponential(1.0, n)
    elif arrival == "gamma":
        if burstiness <= 0:
            raise ValueError(f"burstiness {burstiness} must be > 0 (the gaps' coefficient of variation; 1 = Poisson)")
        shape = 1.0 / burstiness ** 2
        gaps = rng.gamma(shape, 1.0 / shape, n)
    else:
        raise ValueError(f"arrival {arrival!r} unknown: use 'poisson', 'constant' or 'gamma'")
    gaps = gaps / gaps.mean() / rate_per_s
    return np.concatenate([[0.0], np.cumsum(gaps[:-1])])


def run_async(make_coroutine):
    """``asyncio.run`` of a fresh coroutine; from inside a running loop (a Jupyter kernel) it runs in its own thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    import threading

    out = {}

    def target():
        try:
            out["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    worker = threading.Thread(target=target, name="workbench-open-loop")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


async def run_schedule(host: str, port: int, messages: list[bytes], offsets, timeout_s: float, wall_limit_s: float,
                       connections: int = 32, stream: bool = False) -> dict:
    """Send ``messages[i]`` at ``t0 + offsets[i]``; every time in seconds from ``t0``.

    Returns ``sent`` and ``done`` per request (NaN: not sent / not finished), ``outcome`` (``"ok"``, ``"timeout"``,
    ``"unsent"``, ``"http <status>"`` or an exception name) and, for streams, ``events`` (each ``data:`` event's
    time). ``connections`` keep-alive connections are opened before the clock starts (plain requests only).
    """
    n = len(messages)
    sent, done = [float("nan")] * n, [float("nan")] * n
    outcome = ["unsent"] * n
    events = [[] for _ in range(n)] if stream else None
    pool = Connections(host, port)
    if not stream:
        for _ in range(min(connections, n)):
            pool.put(await pool.open())

    async def answer(i: int, t0: float, conn) -> None:
        try:
            if stream:
                conn = await pool.open()
                conn[1].write(messages[i])
                sent[i] = time.perf_counter() - t0
                outcome[i] = await read_stream(conn[0], t0, timeout_s, events[i])
                conn[1].close()
                conn = None
            else:
                if conn is None:  # every pre-opened connection is busy: open one; its connect time counts as lag
                    conn = await pool.get()
                    conn[1].write(messages[i])
                    sent[i] = time.perf_counter() - t0
                status, keep, _ = await asyncio.wait_for(read_response(conn[0]), timeout_s)
                outcome[i] = "ok" if status == 200 else f"http {status}"
                pool.put(conn) if keep else conn[1].close()
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            outcome[i] = "timeout"
            if conn is not None:
                conn[1].close()
            if isinstance(exc, asyncio.CancelledError):
                raise
        except Exception as exc:  # connection refused / reset: an error, recorded per request
            outcome[i] = type(exc).__name__
            if conn is not None:
                conn[1].close()
        done[i] = time.perf_counter() - t0

    tasks = []
    t0 = time.perf_counter()
    deadline = t0 + wall_limit_s
    for i, at in enumerate(offsets):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # answers are read while waiting; the wake-up lateness is the send lag
        if time.perf_counter() > deadline:
            break
        conn = pool.idle.pop() if (pool.idle and not stream) else None
        if conn is not None:  # an open connection is free: send now, from the scheduling loop itself
            conn[1].write(messages[i])
            sent[i] = time.perf_counter() - t0
        tasks.append(asyncio.ensure_future(answer(i, t0, conn)))
    remaining = deadline - time.perf_counter()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(remaining, 0.0))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    pool.close()
    return {"sent": sent, "done": done, "outcome": outcome, "events": events}




def run_schedule_blocking(**kwargs) -> dict:
    """:func:`run_schedule` to its end (the entry point of the pinned client process)."""
    return run_async(lambda: run_schedule(**kwargs))


def sequential_blocking(**kwargs) -> list:
    """:func:`workbench.serving.load.client.sequential` to its end (the pinned client process's other entry point)."""
    from workbench.serving.load.client import sequential

    return run_async(lambda: sequential(**kwargs))


def closed_loop_blocking(**kwargs) -> list:
    """:func:`workbench.serving.load.client.closed_loop` to its end (the serve-check burst)."""
    from workbench.serving.load.client import closed_loop

    return run_async(lambda: closed_loop(**kwargs))


__all__ = ["schedule", "run_schedule", "run_async", "run_schedule_blocking", "sequential_blocking",
           "closed_loop_blocking"]
