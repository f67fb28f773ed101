"""The one load client: Triton's HTTP/REST (KServe v2) JSON protocol over asyncio streams, for plain requests
(``/infer``, keep-alive) and streamed ones (``/generate_stream``, server-sent events), plus Triton's statistics.

Every request the workbench sends to a served model goes through here: the open-loop runs
(:mod:`workbench.serving.load.schedule`), the one-at-a-time capacity (:mod:`workbench.serving.load.sweep`) and the
serve-check burst. The installed tritonclient has neither ``http.aio`` (needs aiohttp) nor ``grpc.aio`` (needs
grpcio), and its blocking HTTP client would need a thread per request in flight; a few dozen lines of HTTP/1.1 do.
Loopback only: any other host is refused.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoadError(RuntimeError):
    """The load run could not be set up or the server misbehaved; the message says why and what to do."""


def split_url(url: str) -> tuple[str, int]:
    """``"127.0.0.1:8000"`` / ``"http://localhost:8000"`` -> (host, port); any non-loopback host is refused."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("/", 1)[0]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]:")
    else:
        host, _, port = rest.rpartition(":")
    if host not in LOOPBACK:
        raise ValueError(f"load generation is loopback only: host {host!r} in {url!r} refused; serve the model "
                         f"locally (workbench load serves the bundle on 127.0.0.1) and use one of {LOOPBACK}")
    if not port.isdigit():
        raise ValueError(f"url {url!r} has no port: use host:port, e.g. 127.0.0.1:8000")
    return host, int(port)


def infer_body(inputs: dict) -> bytes:
    """KServe v2 JSON request body for ``{name: np.ndarray}``."""
    from tritonclient.utils import np_to_triton_dtype

    tensors = [{"name": name, "shape": list(a.shape), "datatype": np_to_triton_dtype(a.dtype),
                "data": a.reshape(-1).tolist()} for name, a in inputs.items()]
    return json.dumps({"inputs": tensors}).encode()


def decode_outputs(payload: bytes) -> dict:
    """``{output name: np.ndarray}`` from a KServe v2 JSON answer."""
    import numpy as np
    from tritonclient.utils import triton_to_np_dtype

    out = {}
    for t in json.loads(payload)["outputs"]:
        out[t["name"]] = np.array(t["data"], dtype=triton_to_np_dtype(t["datatype"])).reshape(t["shape"])
    return out


def request_bytes(host: str, port: int, model: str, body: bytes, stream: bool = False) -> bytes:
    """One whole HTTP/1.1 request (built before the clock starts). Streams close their connection at the end."""
    path, close = ("generate_stream", "Connection: close\r\n") if stream else ("infer", "")
    return (f"POST /v2/models/{model}/{path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{close}Content-Length: {len(body)}\r\n\r\n").encode() + body


class Connections:
    """Idle keep-alive HTTP/1.1 connections to one server; a request in flight owns its connection."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.idle = host, port, []

    async def open(self):
        return await asyncio.open_connection(self.host, self.port)

    async def get(self):
        return self.idle.pop() if self.idle else await self.open()

    def put(self, conn) -> None:
        self.idle.append(conn)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def read_response(reader, keep_payload: bool = False) -> tuple[int, bool, bytes | None]:
    """Read one HTTP/1.1 answer to the end; returns (status, keep the connection, payload if asked for)."""
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
    parts = []
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            parts.append((await reader.readexactly(size + 2))[:size])
            if size == 0:
                break
    elif length:
        parts.append(await reader.readexactly(length))
    return status, keep, (b"".join(parts) if keep_payload else None)


async def read_stream(reader, t0: float, timeout_s: float, events: list) -> str:
    """Read a ``generate_stream`` answer to its end; appends each ``data:`` event's time (s from ``t0``); returns the
    outcome (``"ok"``, ``"http <status>"``, ``"error event ..."``)."""
    status = int((await asyncio.wait_for(reader.readline(), timeout_s)).split()[1])
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        if not line:
            break
        if line.startswith(b"data:"):
            events.append(time.perf_counter() - t0)
            if b'"error"' in line:
                return f"error event {line[:120]!r}"
    return "ok" if status == 200 else f"http {status}"


async def sequential(host: str, port: int, messages: list[bytes], stream: bool = False, timeout_s: float = 60.0,
                     keep_payload: bool = False) -> list[tuple[float, str, object]]:
    """Send ``messages`` one at a time (the next after the last byte of the previous answer) over one keep-alive
    connection (streams: one connection each); returns (seconds end to end, outcome, payload or token count) each."""
    out, pool = [], Connections(host, port)
    try:
        for message in messages:
            start = time.perf_counter()
            if stream:
                reader, writer = await pool.open()
                events: list = []
                try:
                    writer.write(message)
                    outcome = await read_stream(reader, start, timeout_s, events)
                finally:
                    writer.close()
                out.append((time.perf_counter() - start, outcome, len(events)))
                continue
            conn = await pool.get()
            conn[1].write(message)
            status, keep, payload = await asyncio.wait_for(read_response(conn[0], keep_payload), timeout_s)
            out.append((time.perf_counter() - start, "ok" if status == 200 else f"http {status}", payload))
            pool.put(conn) if keep else conn[1].close()
    finally:
        pool.close()
    return out


async def closed_loop(host: str, port: int, messages: list[bytes], concurrency: int, timeout_s: float = 60.0,
                      keep_payload: bool = True) -> list[tuple[float, str, object]]:
    """``concurrency`` workers, each over its own keep-alive connection, send ``messages`` as fast as answers come
    back (a burst, so a dynamic batcher can form batches); returns (seconds, outcome, payload) per message, in order."""
    out: list = [None] * len(messages)
    todo = iter(range(len(messages)))

    async def worker():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in todo:
                start = time.perf_counter()
                writer.write(messages[i])
                status, keep, payload = await asyncio.wait_for(read_response(reader, keep_payload), timeout_s)
                out[i] = (time.perf_counter() - start, "ok" if status == 200 else f"http {status}", payload)
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(messages)))))
    return out


def model_stats(url: str, model: str) -> dict:
    """Triton's cumulative statistics of ``model``: count and ns of queue / compute_input / compute_infer / output,
    and ``batch_<n>`` (executions of batch size n)."""
    host, port = split_url(url)
    host = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{host}:{port}/v2/models/{model}/stats", timeout=10) as r:
        model_stats_ = json.loads(r.read())["model_stats"][0]
    stats = model_stats_["inference_stats"]
    out = {k: (int(v.get("count", 0)), int(v.get("ns", 0))) for k, v in stats.items() if isinstance(v, dict)}
    for b in model_stats_.get("batch_stats", []):
        infer = b.get("compute_infer", {})
        out[f"batch_{int(b['batch_size'])}"] = (int(infer.get("count", 0)), int(infer.get("ns", 0)))
    return out


def server_split(before: dict, after: dict) -> dict:
    """Per-request queue and compute milliseconds over a run, from two :func:`model_stats` snapshots."""
    d = {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1]) for k in after}
    n = d.get("success", (0, 0))[0]
    if not n:
        return {"requests": 0}
    queue = d.get("queue", (0, 0))[1] / n / 1e6
    compute = sum(d.get(k, (0, 0))[1] for k in ("compute_input", "compute_infer", "compute_output")) / n / 1e6
    executions = sum(v[0] for k, v in d.items() if k.startswith("batch_"))
    exec_s = sum(v[1] for k, v in d.items() if k.startswith("batch_")) / 1e9
    return {"requests": n, "queue_ms": round(queue, 4), "compute_ms": round(compute, 4),
            "compute_infer_ms": round(d.get("compute_infer", (0, 0))[1] / n / 1e6, 4),
            "mean_batch": round(n / executions, 3) if executions else None, "exec_s": round(exec_s, 4)}


__all__ = ["LoadError", "split_url", "infer_body", "decode_outputs", "request_bytes", "Connections", "read_response",
           "read_stream", "sequential", "closed_loop", "model_stats", "server_split", "LOOPBACK"]
