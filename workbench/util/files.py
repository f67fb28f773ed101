"""Files: sha256, checksums, atomic publish (a folder or a file appears complete or not at all), the artifacts root.

Every writer of a model, bundle, report or calibration uses these, so "written atomically and checksummed" means
the same thing everywhere.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def artifacts_root() -> Path:
    """The folder every output goes under (results tables, ONNX files, bundles): ``$WORKBENCH_ARTIFACTS`` when set,
    else ``./artifacts``; read at each call, not at import, so a test or notebook can point it elsewhere."""
    env = os.environ.get("WORKBENCH_ARTIFACTS")
    return Path(env) if env else Path.cwd() / "artifacts"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (ONNX weights can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """``checksums.json`` with the sha256 of every file directly in ``folder``; returns the mapping."""
    folder = Path(folder)
    sums = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != "checksums.json"}
    (folder / "checksums.json").write_text(json.dumps(sums, indent=2) + "\n")
    return sums


def swap_into_place(tmp: Path, dest: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dest``. An old ``dest`` is moved aside first and put back if the
    rename fails, so ``dest`` is always either the old complete folder or the new complete one."""
    tmp, dest = Path(tmp), Path(dest)
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def publish_dir(dest: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside ``dest``; when the block succeeds it replaces ``dest`` (see
    :func:`swap_into_place`), when it fails it is deleted and ``dest`` is untouched.

    Example:
        >>> with publish_dir("artifacts/onnx/export-abc") as tmp:     # doctest: +SKIP
        ...     (tmp / "model.onnx").write_bytes(data)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        swap_into_place(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_file_atomic(dest: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temp file beside ``dest``, fsync it, rename it into place: never a half-written file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


__all__ = ["artifacts_root", "sha256", "write_checksums", "swap_into_place", "publish_dir", "write_file_atomic"]
