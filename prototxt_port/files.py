"""Atomic file writes for prototxt_port's outputs (.pt and .caffemodel files).

The file appears whole or not at all: the data goes to a temporary file in the destination
folder (same file system, so the rename is atomic), is flushed and fsynced, then renamed over
the destination; on any error the temporary file is removed and the old destination is left
untouched. The file gets the permissions `open()` would give it (a new file 0666 & ~umask, a
replaced file keeps its mode; mkstemp alone makes 0600). This is the one implementation:
tsn.atomic re-exports it (prototxt_port is the leaf package, importing nothing from tsn, so the
code lives here and tsn builds on it; docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def file_mode(path: str | Path) -> int:
    """The mode `open(path, "w")` would leave: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:  # the umask, read without changing it where Linux allows
        with open("/proc/self/status", encoding="ascii") as status:
            mask = next(int(ln.split()[1], 8) for ln in status if ln.startswith("Umask:"))
    except (OSError, ValueError, StopIteration):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; it replaces `path` when the block ends cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode(path))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (the one file hash of prototxt_port and
    tsn: conversion records, downloads, the checksum lock)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
