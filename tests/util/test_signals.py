import signal
import subprocess
import sys

CHILD = """
import sys, time
from workbench.util.signals import terminate_as_interrupt
terminate_as_interrupt()
try:
    print("ready", flush=True)
    time.sleep(60)
except KeyboardInterrupt as exc:
    print("interrupted:", exc, flush=True)
finally:
    print("cleaned up", flush=True)
"""


def test_sigterm_runs_the_clean_up_like_ctrl_c():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert "interrupted: stopped by signal 15" in out and "cleaned up" in out


def test_without_it_sigterm_skips_the_clean_up():
    """The default the handler replaces: the process ends without its finally block (why servers were left running)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD.replace("terminate_as_interrupt()", "")],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert "cleaned up" not in out and child.returncode == -signal.SIGTERM
