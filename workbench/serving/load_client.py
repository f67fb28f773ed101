"""The load generator's client: Triton's HTTP/REST (KServe v2) JSON protocol over asyncio streams, and the loop that
sends each request at its scheduled time (see :mod:`workbench.serving.load` for why it is written this way).

The installed tritonclient has neither ``http.aio`` (needs aiohttp) nor ``grpc.aio`` (needs grpcio), and its blocking
HTTP client would need a thread per request in flight; a few dozen lines of HTTP/1.1 keep-alive do instead.
"""
from __future__ import annotations

import asyncio
import json
import time

SPIN_S = 0.003  # wake this early and poll the clock: asyncio sleeps overshoot by up to ~1 ms (epoll rounds up)


def infer_body(inputs: dict) -> bytes:
    """KServe v2 JSON request body for ``{name: np.ndarray}``."""
    from tritonclient.utils import np_to_triton_dtype

    tensors = [{"name": name, "shape": list(a.shape), "datatype": np_to_triton_dtype(a.dtype),
                "data": a.reshape(-1).tolist()} for name, a in inputs.items()]
    return json.dumps({"inputs": tensors}).encode()


class _Connections:
    """Idle keep-alive HTTP/1.1 connections to one server; a request in flight owns its connection."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.idle = host, port, []

    async def get(self):
        if self.idle:
            return self.idle.pop()
        return await asyncio.open_connection(self.host, self.port)

    def put(self, conn) -> None:
        self.idle.append(conn)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader) -> tuple[int, bool]:
    """Read one HTTP/1.1 answer to the end; returns (status, keep the connection)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length, chunked, keep = 0, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif key == "connection" and value == "close":
            keep = False
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep


async def run_schedule(host, port, model, bodies, offsets, timeout_s, wall_limit_s, connections):
    """Send ``bodies[i]`` at ``t0 + offsets[i]``; returns (sent, done, outcome) per request (seconds from t0)."""
    pool = _Connections(host, port)
    head_fmt = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n")
    messages = [(head_fmt % len(b)).encode() + b for b in bodies]
    for _ in range(connections):  # open connections before the clock starts (more are opened, and timed, if needed)
        pool.put(await asyncio.open_connection(host, port))
    n = len(bodies)
    sent = [float("nan")] * n
    done = [float("nan")] * n
    outcome = ["unsent"] * n

    async def answer(i: int, t0: float, conn):
        try:
            if conn is None:  # every pre-opened connection is busy: open one (its connect time counts as lag)
                conn = await pool.get()
                conn[1].write(messages[i])
                sent[i] = time.perf_counter() - t0
            status, keep = await asyncio.wait_for(_read_response(conn[0]), timeout_s)
            outcome[i] = "ok" if status == 200 else f"http {status}"
            if keep:
                pool.put(conn)
            else:
                conn[1].close()
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
        target = t0 + at
        delay = target - time.perf_counter()
        if delay > SPIN_S + 0.0005:
            await asyncio.sleep(delay - SPIN_S)   # the loop's timer is ms-coarse: sleep short, then poll the clock
        while time.perf_counter() < target:
            await asyncio.sleep(0)                # still reads answers while waiting for the send time
        now = time.perf_counter()
        if now > deadline:
            break
        conn = pool.idle.pop() if pool.idle else None
        if conn is not None:                      # send now, from the scheduling loop itself
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
    return sent, done, outcome


__all__ = ["infer_body", "run_schedule", "SPIN_S"]
