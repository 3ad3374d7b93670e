"""Atomic file writes: a file either appears whole or not at all, never half-written.

Every writer of results, checkpoints, weights and lists goes through here: the data goes to a
temporary file in the destination folder (same file system, so the rename is atomic), is
flushed and fsynced, then renamed over the destination with os.replace. On any error,
SIGKILL aside, the temporary file is removed and the old destination is left untouched.

The file gets the permissions `open()` would give it (docs/reliability.md): a new file
0666 & ~umask, a replaced file keeps its mode. (mkstemp alone creates 0600, which would hide
lists, checkpoints and scores from the rest of a group.)

`check_writable(folder)` is the probe commands run before a long job, so that a read-only or
full output fails at once instead of after the work is done.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tsn.errors import OutputError

PROBE_BYTES = 4096  # one page: a full file system refuses it, an empty file might still fit


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), else set and
    restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(path: str | Path) -> int:
    """The mode `open(path, "w")` would leave: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


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


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def check_writable(folder: str | Path) -> Path:
    """Create `folder` (and parents) and write, fsync and remove a one-page probe file in it.

    Raises OutputError (`cannot write FOLDER: [Errno 30] Read-only file system`) when a step
    fails: read-only file system, disk full, no permission. Run before a long job whose result
    would otherwise be lost at the final write.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"\0" * PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            Path(probe).unlink(missing_ok=True)
    except FileExistsError as err:  # mkdir(exist_ok) over a file, or a file on the path
        raise OutputError(f"cannot write {folder}: a file is in the way (not a folder)",
                          err.errno) from None
    except OSError as err:
        raise OutputError(write_error(folder, err), err.errno) from None
    return folder


def write_error(path: str | Path, err: OSError) -> str:
    """One line for an OSError met while writing `path`: `cannot write PATH: [Errno N] why`."""
    why = f"[Errno {err.errno}] {err.strerror}" if err.errno else str(err)
    return f"cannot write {path}: {why}"
