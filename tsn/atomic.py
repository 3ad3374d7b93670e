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
import tempfile
from pathlib import Path

# The atomic write itself lives in the leaf package (it imports nothing from tsn), so the two
# packages share one implementation.
from prototxt_port.files import atomic_open, atomic_write_bytes, file_mode
from tsn.errors import OutputError

__all__ = ["PROBE_BYTES", "atomic_open", "atomic_write_bytes", "atomic_write_text",
           "check_writable", "file_mode", "write_error"]

PROBE_BYTES = 4096  # one page: a full file system refuses it, an empty file might still fit


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
