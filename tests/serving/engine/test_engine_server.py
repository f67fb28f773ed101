"""Server lifecycle without vLLM: a stand-in "engine Python" that dies, hangs, or holds a child; port in use."""
from __future__ import annotations

import os
import socket
import stat

import pytest

from workbench.serving.engine.engine_args import EngineArgs
from workbench.serving.engine.server import EngineError, VllmServer, split_cpus


def _fake_python(tmp_path, body: str):
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    return tmp_path / "ckpt"


def test_start_up_death_reports_log_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ENGINE_PYTHON", str(_fake_python(tmp_path, "echo 'boom: no kernel'; exit 3")))
    with pytest.raises(EngineError, match="(?s)exited during start-up \\(code 3\\).*boom: no kernel"):
        with VllmServer(_checkpoint(tmp_path), EngineArgs(), tmp_path / "log"):
            pass


def test_hung_start_up_is_bounded_and_the_group_is_killed(tmp_path, monkeypatch):
    # the "server" starts a child (as vLLM starts its engine core) and never answers /health
    fake = _fake_python(tmp_path, f"sleep 300 & echo $! > {tmp_path}/child; sleep 300")
    monkeypatch.setenv("WORKBENCH_ENGINE_PYTHON", str(fake))
    server = VllmServer(_checkpoint(tmp_path), EngineArgs(), tmp_path / "log", startup_timeout_s=3)
    with pytest.raises(EngineError, match="not healthy within 3 s"):
        with server:
            pass
    assert server.process.poll() is not None
    child = int((tmp_path / "child").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_port_in_use_is_reported(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(EngineError, match=f"port {s.getsockname()[1]} .* in use"):
            VllmServer(_checkpoint(tmp_path), EngineArgs(), tmp_path / "log", port=s.getsockname()[1])


def test_split_cpus_keeps_client_apart():
    engine, client, note = split_cpus()
    if len(os.sched_getaffinity(0)) > 1:
        assert not set(engine) & set(client) and not note
    else:
        assert note


def test_engine_args_cli_and_validation():
    args = EngineArgs(max_num_seqs=4, max_num_batched_tokens=256, enable_prefix_caching=False, kv_cache_dtype="fp8")
    cli = args.cli()
    assert cli[cli.index("--max-num-batched-tokens") + 1] == "256"
    assert "--no-enable-prefix-caching" in cli and cli[cli.index("--kv-cache-dtype") + 1] == "fp8"
    assert EngineArgs.from_dict(args.as_dict()) == args
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        EngineArgs(kv_cache_dtype="int3")
    with pytest.raises(ValueError, match="unknown engine arguments"):
        EngineArgs.from_dict({"max_num_seqs": 2, "tensor_parallel": 8})
    with pytest.raises(ValueError, match="dtype 'int8'"):
        EngineArgs(dtype="int8")


def test_the_compute_dtype_follows_the_machine(monkeypatch):
    """vLLM's bf16 is emulated on a CPU without AMX / AVX512-BF16: the default compute dtype is fp32 there (its label
    says so), bf16 where the CPU has native bf16."""
    import workbench.runtime.cpu as cpu
    from workbench.serving.engine.engine_args import engine_dtype_here

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(cpu, "isa_summary", lambda: {"avx2": True, "avx512": False, "avx512_bf16": False})
    assert engine_dtype_here() == "float32" and EngineArgs().dtype == "float32"
    assert EngineArgs().label().endswith("-float32") and EngineArgs().cli()[:2] == ["--dtype", "float32"]
    monkeypatch.setattr(cpu, "isa_summary", lambda: {"avx2": True, "avx512": True, "avx512_bf16": True})
    assert EngineArgs().dtype == "bfloat16" and not EngineArgs().label().endswith("bfloat16")


def test_death_mid_run_fails_with_log_tail(tmp_path, monkeypatch):
    import sys
    import time

    # a stand-in server: answers /health, then dies after ~1.5 s with a message in its log
    script = tmp_path / "serve.py"
    script.write_text(
        "import sys, threading, http.server, os\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a):\n"
        "        pass\n"
        "s = http.server.HTTPServer(('127.0.0.1', port), H)\n"
        "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
        "threading.Event().wait(1.5)\n"
        "print('engine core: out of KV cache blocks', flush=True)\n"
        "os._exit(9)\n")
    fake = _fake_python(tmp_path, f'exec {sys.executable} {script} "$@"')
    monkeypatch.setenv("WORKBENCH_ENGINE_PYTHON", str(fake))
    with VllmServer(_checkpoint(tmp_path), EngineArgs(), tmp_path / "log", startup_timeout_s=30) as server:
        server.check_alive()
        deadline = time.time() + 20
        while server.process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        with pytest.raises(EngineError, match="(?s)died mid-run \\(exit code 9\\).*out of KV cache blocks"):
            server.check_alive()
