"""The one readiness poll: ready once the probe answers, bounded in time, fails fast (with the log tail) when the
watched process dies; a tiny local HTTP server stands in for Triton / vLLM."""
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.util.net import HOST, ProcessExited, free_port, free_ports, http_ok, wait_until_ready


@pytest.fixture
def server():
    """A loopback server that answers 503 ("loading") to its first ``server.not_ready`` GETs, then 200."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            httpd.hits += 1
            self.send_response(200 if httpd.hits > httpd.not_ready else 503)
            self.end_headers()

        def log_message(self, *args):   # keep the test output clean
            pass

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    httpd.hits, httpd.not_ready = 0, 2
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_ready_after_the_server_stops_answering_503(server):
    url = f"http://{HOST}:{server.server_address[1]}/health"
    waited = wait_until_ready("stand-in", http_ok(url), timeout_s=30, interval_s=0.01)
    assert server.hits == 3   # two 503s were "not yet", the 200 ended the wait at once
    assert 0 < waited < 30


def test_a_live_process_does_not_stop_the_wait(server):
    url = f"http://{HOST}:{server.server_address[1]}/"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wait_until_ready("stand-in", http_ok(url), process=proc, timeout_s=30, interval_s=0.01)
    finally:
        proc.kill()
        proc.wait()
    assert server.hits == 3


def test_nothing_listening_times_out_naming_the_url_the_log_and_the_fix():
    url = f"http://{HOST}:{free_port()}/v2/health/ready"
    assert http_ok(url, timeout_s=1)() is False   # refused is "not yet", not an error
    start = time.perf_counter()
    with pytest.raises(TimeoutError) as err:
        wait_until_ready("tritonserver", http_ok(url), timeout_s=0.3, interval_s=0.05,
                         log_tail=lambda: "loading model", fix="raise start_timeout")
    assert 0.3 <= time.perf_counter() - start < 10
    msg = str(err.value)
    assert msg.startswith("tritonserver not ready within 0 s") and url in msg
    assert "loading model" in msg and msg.endswith("Fix: raise start_timeout")


def test_the_deadline_counts_from_started():
    calls = []
    with pytest.raises(TimeoutError, match="vLLM not ready within 5 s"):
        wait_until_ready("vLLM", lambda: calls.append(1) or False, timeout_s=5, started=time.perf_counter() - 10)
    assert len(calls) == 1   # already past the deadline: one probe, no sleep


def test_a_dead_process_fails_at_once_with_its_exit_code_and_log_tail():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    proc.wait()
    probes = []
    with pytest.raises(ProcessExited) as err:
        wait_until_ready("vLLM", lambda: probes.append(1) or False, process=proc, timeout_s=60,
                         log_tail=lambda: "boom: no kernel")
    assert err.value.returncode == 3 and isinstance(err.value, RuntimeError)
    assert "vLLM exited with code 3" in str(err.value) and "boom: no kernel" in str(err.value)
    assert probes == []   # a dead process is not probed


def test_one_servers_ports_are_distinct_and_free():
    for _ in range(200):   # one at a time, the OS handed a just-closed port out again (HTTP == metrics on Triton)
        ports = free_ports(3)
        assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind((HOST, port))   # nothing holds it after the call
