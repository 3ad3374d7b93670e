"""Error types raised by more than one package of tsn (each defined once, here)."""

import signal


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised (by tsn.cli) where Python raises KeyboardInterrupt for SIGINT, so that
    both stop a command the same way: its `finally` blocks run (partial files saved, worker
    processes stopped)."""


def interrupt_exit_code(err: BaseException) -> int:
    """The shell's code for a command stopped by a signal: 128 + SIGTERM (Terminated) or
    SIGINT (any other KeyboardInterrupt)."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)
