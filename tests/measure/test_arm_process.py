"""ArmProcess: the arm is built and called in another process; failures come back with their traceback."""
import os
import textwrap

import pytest

from workbench.measure.arm_process import ArmProcess, ArmProcessError

FACTORIES = textwrap.dedent('''
    import os

    def counter(start):
        state = {"n": start}
        def call(step):
            state["n"] += step
            return os.getpid(), state["n"]
        return call, {"pid": os.getpid(), "start": start}

    def broken():
        raise ValueError("no such kernel here")

    def fails_on_call():
        def call():
            raise KeyError("bad prompt")
        return call, {}
''')


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return path


def test_the_arm_lives_in_its_own_process_and_keeps_its_state(source):
    with ArmProcess(source, "counter", start=10) as arm:
        assert arm.info["start"] == 10 and arm.info["pid"] != os.getpid()
        assert arm(1) == (arm.info["pid"], 11)
        assert arm(5) == (arm.info["pid"], 16)   # the same built arm answers every call
        process = arm.process
    assert not process.is_alive()


def test_a_failed_build_or_call_raises_with_the_childs_traceback(source):
    with pytest.raises(ArmProcessError, match="no such kernel here"):
        ArmProcess(source, "broken")
    with ArmProcess(source, "fails_on_call") as arm:
        with pytest.raises(ArmProcessError, match="bad prompt"):
            arm()
    with pytest.raises(ArmProcessError, match="has no attribute 'missing'"):
        ArmProcess(source, "missing")
