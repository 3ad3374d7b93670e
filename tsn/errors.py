"""Error types raised by more than one package of tsn (each defined once, here)."""


class WeightsError(ValueError):
    """A weight file or its description is unusable: a bad manifest, a failed or refused fetch,
    a checksum mismatch, a port that does not fit, or initial weights that do not fit the model.
    The message names the file, the problem and the fix."""


class OutputError(OSError):
    """An output that cannot be written (read-only or full file system, no permission): one
    line naming the path, the system's reason and what was kept. `errno` is the cause's."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
