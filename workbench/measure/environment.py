"""Environment fingerprint stored with every results table: CPU, ISA flags, GPU, threads, versions, git.

Each fingerprint has an ``environment_id``: a short hash of the facts that make two timings comparable (the machine
and the software that ran the model), so every result row can name the environment it was measured in.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from workbench.runtime.cpu import cpu_model_and_flags, isa_summary

# What identifies "the machine + software" a timing belongs to. Left out on purpose: the hostname (two identical
# machines are the same environment), the git revision (the workbench's own code is not the model's runtime, and a
# dirty tree would give every edit a new id), the timestamp, and torch's default thread count (a per-run setting
# that every row records as ``threads``).
IDENTITY_KEYS = ("os", "python", "cpu", "cpu_isa", "logical_cpus", "gpu", "packages")
PACKAGES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return (rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_id(env: dict) -> str:
    """12 hex digits identifying the machine + software of a fingerprint (:data:`IDENTITY_KEYS`): the same on every
    run on this machine with these packages, different when the CPU, GPU, OS, Python or a package version changes.

    Example:
        >>> environment_id({"cpu": "x"}) == environment_id({"cpu": "x", "hostname": "other", "git_revision": "abc"})
        True
    """
    facts = {k: env.get(k) for k in IDENTITY_KEYS}
    payload = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def environment_fingerprint() -> dict:
    """Facts that make a timing reproducible or explain why it differs elsewhere."""
    import os

    import torch

    cpu, flags = cpu_model_and_flags()
    env = {"hostname": platform.node(), "os": platform.platform(), "python": platform.python_version(), "cpu": cpu,
           "cpu_isa": flags, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "packages": package_versions(), "git_revision": git_revision(), "gpu": None}
    # What the flags mean for the CPU arms (AVX2 / AVX-512 / VNNI / AMX / native bf16): derived from ``cpu_isa``, so it
    # is not an identity key of its own.
    env["isa_summary"] = isa_summary(flags)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 1e9, 1),
                      "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda}
    env["environment_id"] = environment_id(env)
    return env
