"""Loopback networking helpers shared by every server the workbench starts (Triton, vLLM, JupyterLab in tests)."""
from __future__ import annotations

import socket

HOST = "127.0.0.1"   # servers the workbench starts listen on loopback only


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the OS picks it): never a fixed port, other servers may share the machine."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


__all__ = ["free_port", "HOST"]
