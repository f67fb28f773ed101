"""A recipe for the runner's one-process-per-arm test: ``catalogue()`` -> (arms, ArmContext) in the child."""
import os
import time

from workbench.arms.base import Arm, ArmContext, BuiltArm


def _spin(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return os.getpid()


def catalogue(crash: str = ""):
    def build(seconds):
        return lambda ctx: BuiltArm(call=lambda: _spin(seconds))

    def dies(ctx):
        return BuiltArm(call=lambda: os._exit(3))   # a segfaulting kernel: the process is gone, no exception

    arms = [Arm("base", "baseline", build(0.004), baseline=True), Arm("quick", "int8", build(0.001)),
            Arm("crash", "int8", dies if crash else build(0.001))]
    return arms, ArmContext()
