"""The load client in its own process, pinned to its own CPUs, with the server pinned to the rest.

On a small machine the client competes with a CPU-bound model for the same cores, and the figures then partly
measure the client. So each run's client is a fresh (spawned) process bound with ``os.sched_setaffinity`` to the
client CPU set, ``TritonServer`` binds the server (and every backend stub it starts) to the others, and the run
reports what the client used: ``client_cpu_share`` = the client process's CPU seconds / the run's wall seconds
(its event loop is one thread, so 1.0 is a whole core: the client is the bottleneck).

The split: the last ``WORKBENCH_CLIENT_CPUS`` (default 1) of the CPUs this process may use go to the client, the
others to the server. With a single CPU there is nothing to split: both get it and the row says ``client_apart:
False``. ``WORKBENCH_CLIENT_CPUS=0`` turns pinning off (both use every CPU; also recorded).
"""
from __future__ import annotations

import os
import time

CLIENT_LIMIT_CPU_SHARE = 0.9   # a client busier than this cannot be trusted to keep the schedule


def cpu_split() -> dict:
    """``{"client_cpus": (...), "server_cpus": (...), "client_apart": bool}`` for this machine (see the module doc)."""
    avail = sorted(os.sched_getaffinity(0))
    raw = os.environ.get("WORKBENCH_CLIENT_CPUS", "1").strip()
    if not raw.isdigit():
        raise ValueError(f"WORKBENCH_CLIENT_CPUS={raw!r}: give how many CPUs the load client gets (0 = no pinning)")
    k = int(raw)
    if k == 0 or len(avail) < 2:
        return {"client_cpus": tuple(avail), "server_cpus": tuple(avail), "client_apart": False}
    k = min(k, len(avail) - 1)
    return {"client_cpus": tuple(avail[-k:]), "server_cpus": tuple(avail[:-k]), "client_apart": True}


def _child(conn, cpus, fn, kwargs) -> None:
    """Runs in the spawned client process: pin, run ``fn(**kwargs)``, send back the result and the CPU it took."""
    import gc
    import resource
    import traceback

    try:
        os.sched_setaffinity(0, cpus)
        gc.collect()
        gc.disable()  # a collection pause in the middle of the schedule would show up as send lag
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        result = fn(**kwargs)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        conn.send({"result": result, "client_cpu_s": cpu, "client_wall_s": wall,
                   "client_cpus_used": sorted(os.sched_getaffinity(0))})
    except BaseException as exc:  # the parent re-raises with this text
        conn.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    finally:
        conn.close()


def run_pinned(fn, kwargs: dict, cpus, timeout_s: float) -> dict:
    """``fn(**kwargs)`` (a module-level function, its arguments picklable) in a fresh process pinned to ``cpus``.

    Returns ``{"result", "client_cpu_s", "client_wall_s", "client_cpus_used"}``. Raises RuntimeError with the child's
    error, or when it gives no answer within ``timeout_s`` (it is then killed)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")   # no fork of a process that may hold threads (Jupyter, tqdm)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, tuple(cpus), fn, kwargs), name="workbench-load-client",
                       daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise RuntimeError(f"the load client process gave no answer within {timeout_s:.0f}s (pid {proc.pid}, "
                               f"alive {proc.is_alive()}): the run was killed; check the server log and the rate")
        out = parent.recv()
    except EOFError:
        raise RuntimeError(f"the load client process died (exit code {proc.exitcode}) before answering") from None
    finally:
        parent.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "error" in out:
        raise RuntimeError(f"the load client failed: {out['error']}\n{out['traceback']}")
    return out


def client_run(fn, kwargs: dict, timeout_s: float) -> tuple[object, dict]:
    """``fn(**kwargs)`` in the pinned client process; returns (result, the row's client columns): ``client_cpu_share``,
    ``client_cpus``, ``server_cpus``, ``client_apart``."""
    split = cpu_split()
    out = run_pinned(fn, kwargs, split["client_cpus"], timeout_s)
    share = out["client_cpu_s"] / out["client_wall_s"] if out["client_wall_s"] > 0 else None
    return out["result"], {"client_cpu_share": round(share, 4) if share is not None else None,
                           "client_cpus": ",".join(map(str, out["client_cpus_used"])),
                           "server_cpus": ",".join(map(str, split["server_cpus"])),
                           "client_apart": split["client_apart"]}


__all__ = ["cpu_split", "run_pinned", "client_run", "CLIENT_LIMIT_CPU_SHARE"]
