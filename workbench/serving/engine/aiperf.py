"""AIPerf as the load client: the same prompts on the same absolute schedule as the workbench's own client.

The workload is written as AIPerf's ``single_turn`` JSONL (``text``, ``timestamp`` in ms, ``output_length``) and
replayed with ``--fixed-schedule``, so AIPerf and :mod:`workbench.serving.engine.openai_client` send identical
requests at identical offsets and their TTFTs can be compared point by point. AIPerf starts several processes: it
runs pinned to the client's cores (``sched_setaffinity`` in the child, inherited by its workers), and its CPU time
(children's rusage, every process it started and reaped) over the run's wall time is reported as its CPU share.
``HF_HUB_OFFLINE`` is dropped from its environment: with it set, AIPerf treats a local tokenizer folder as a hub id.

Token counts are the engine's (``--use-server-token-count``: the stream's usage chunk), not AIPerf's re-tokenisation
of the answer text. Decoded text does not always encode back to the tokens generated (byte-level pieces, stray
spaces): on the demo checkpoint 32 generated tokens re-encoded to 1-164, so a request's ITL (its (latency - TTFT) /
(tokens - 1)) came out 0 ms, or undefined and a goodput miss, on requests the engine served within the SLO.

AIPerf's server-metrics scrape is off (``--no-server-metrics``): it fetched the engine's ``/metrics`` every ~0.33 s at
~22 ms a fetch, on the API server process that shares the engine's pinned core and streams every token, so the
client took part in what it measured (the own client, which reads the counters once before and once after, saw half
AIPerf's TTFT at 0.95 requests/s on the same schedule). The counters a row needs are read around the run
(:func:`workbench.serving.engine.load.engine_counters`). Its GPU telemetry is off too (``--no-gpu-telemetry``): one
more service polling DCGM on the client's core, for figures no row reads (on a CPU host it only missed heartbeats).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

from workbench.serving.engine import envs

METRICS = {"time_to_first_token": "ttft", "inter_token_latency": "itl", "request_latency": "e2e",
           "time_per_output_token": "tpot", "output_token_throughput": "output_tokens_per_s",
           "request_throughput": "requests_per_s", "goodput": "goodput_per_s", "request_count": "requests",
           "error_request_count": "errors", "output_sequence_length": "osl", "input_sequence_length": "isl"}


def write_dataset(path: Path, prompts: list[str], offsets, output_tokens: int) -> Path:
    from workbench.util.files import write_file_atomic

    lines = [json.dumps({"type": "single_turn", "text": p, "timestamp": round(float(t) * 1e3, 3),
                         "output_length": output_tokens}) for p, t in zip(prompts, offsets)]
    return write_file_atomic(path, "\n".join(lines) + "\n")


def command(url: str, tokenizer_dir: Path, dataset: Path, out_dir: Path, n_requests: int, slo_ttft_ms: float,
            slo_itl_ms: float, model: str = "model") -> list[str]:
    """AIPerf's command line (flags checked against ``aiperf profile --help`` of aiperf 0.13)."""
    return [str(envs.aiperf_executable()), "profile", "--model", model, "--url", url, "--endpoint-type", "completions",
            "--streaming", "--tokenizer", str(tokenizer_dir), "--custom-dataset-type", "single_turn",
            "--input-file", str(dataset), "--fixed-schedule", "--request-count", str(n_requests),
            "--extra-inputs", "ignore_eos:true", "--extra-inputs", "temperature:0", "--use-server-token-count",
            "--no-server-metrics", "--no-gpu-telemetry",
            "--goodput", f"time_to_first_token:{slo_ttft_ms} inter_token_latency:{slo_itl_ms}",
            "--artifact-dir", str(out_dir), "--ui-type", "none", "--workers-max", "1", "--random-seed", "0"]


def parse_profile(path: Path) -> dict:
    """``profile_export_aiperf.json`` -> flat columns: ``<name>_ms_p50`` / ``_p99`` / ``_mean`` for latencies
    (AIPerf's ms units), plain values for throughputs and counts."""
    data = json.loads(Path(path).read_text())
    out = {}
    for key, short in METRICS.items():
        m = data.get(key)
        if not isinstance(m, dict):
            continue
        unit = m.get("unit", "")
        suffix = "_ms" if unit == "ms" else ""
        if short in ("ttft", "itl", "e2e", "tpot"):
            for stat in ("avg", "p50", "p99"):
                if m.get(stat) is not None:
                    out[f"{short}{suffix}_{'mean' if stat == 'avg' else stat}"] = round(float(m[stat]), 4)
            if m.get("count") is not None:
                out[f"{short}_samples"] = m.get("count")
        else:
            out[short] = m.get("avg")
    return out


def _kill_group(proc) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_aiperf(url: str, tokenizer_dir: Path, prompts: list[str], offsets, output_tokens: int, out_dir: Path,
               slo_ttft_ms: float, slo_itl_ms: float, cpus: list[int] | None = None, timeout_s: float = 900.0) -> dict:
    """Run AIPerf once over the schedule; its parsed metrics plus ``aiperf_cpu_s`` / ``aiperf_cpu_share`` (of the
    client cores over the run) and ``aiperf_wall_s``. RuntimeError with its output tail when it fails."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = write_dataset(out_dir / "workload.jsonl", prompts, offsets, output_tokens)
    cmd = command(url, tokenizer_dir, dataset, out_dir, len(prompts), slo_ttft_ms, slo_itl_ms)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH")}
    pin = set(cpus) if cpus else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except BaseException:   # timeout, Ctrl-C: its whole process group goes (it starts several services)
        _kill_group(proc)
        raise
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (out_dir / "aiperf.log").write_text(output)
    found = sorted(out_dir.rglob("profile_export_aiperf.json"))
    if proc.returncode != 0 or not found:
        tail = "\n".join(output.splitlines()[-20:])
        raise RuntimeError(f"AIPerf failed (exit {proc.returncode}); log {out_dir / 'aiperf.log'}:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**parse_profile(found[-1]), "aiperf_cpu_s": round(cpu, 2), "aiperf_wall_s": round(wall, 2),
            "aiperf_cpu_share": round(cpu / wall / max(1, len(pin or os.sched_getaffinity(0))), 3),
            "aiperf_export": str(found[-1])}


__all__ = ["run_aiperf", "parse_profile", "write_dataset", "command"]
