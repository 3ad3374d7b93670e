"""SIGINT / SIGTERM during training: finish the iteration, write a checkpoint, stop.

Caffe's `caffe train` lets SIGINT and SIGHUP request a snapshot or a stop between iterations
(tools/caffe.cpp `-sigint_effect`, `-sighup_effect`; solver.cpp `GetRequestedAction`, and Solve
snapshots before an early exit). Training does the same for SIGINT (Ctrl-C) and SIGTERM (what
batch schedulers and `kill` send): the handler only records the request; the loop shares it
with every rank inside the iteration's loss all-reduce (so all ranks stop at the same iteration
and take part in the checkpoint's collective; no rank waits alone), writes the checkpoint of
the finished iteration and raises TrainingInterrupted. A second signal stops at once
(KeyboardInterrupt: the last periodic checkpoint stays the resume point).

DataLoader workers forked from this process inherit the handler; it ignores signals in any
process but the one that installed it (a Ctrl-C reaches the whole process group).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing the checkpoint of `iteration`."""

    def __init__(self, iteration: int, checkpoint, signum: int, is_main: bool) -> None:
        super().__init__(f"interrupted ({signal.Signals(signum).name}) at iteration "
                         f"{iteration}: checkpoint {checkpoint} written")
        self.iteration, self.checkpoint, self.signum, self.is_main = (
            iteration, checkpoint, signum, is_main)

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process stopped by it."""
        return 128 + self.signum


class StopRequest:
    """A context that turns SIGINT / SIGTERM into a request (`signum`) the loop polls.

    Outside the main thread (signals cannot be handled there) it installs nothing and never
    requests a stop.
    """

    def __init__(self) -> None:
        self.signum = 0  # 0: no request
        self._owner = os.getpid()
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._owner:  # a forked DataLoader worker: the parent decides
            return
        if self.signum:  # the second signal: stop now, without a new checkpoint
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s: stopping after this iteration with a checkpoint (send it again to "
                    "stop at once)", signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._owner = os.getpid()
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def restore(self) -> None:
        """Put back the handlers that were installed before."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
