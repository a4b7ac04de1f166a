"""Stop a run at the next safe point when the scheduler or the user asks it to.

SLURM sends SIGTERM (or, with `--signal=B:USR1@SECONDS`, SIGUSR1) some time before it kills a
preempted job; Ctrl-C sends SIGINT. While a `StopRequest` is active, the first such signal only
records itself: the training loop finishes the update in flight, writes last.pth with its
position inside the epoch, and raises `Preempted`. A second Ctrl-C interrupts at once.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped for a signal after saving; the process should exit with 128 + signum."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Context manager: installs the handlers on entry (main thread only) and restores the
    previous ones on exit. `signum` is the first signal received, or None."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "StopRequest":
        # Signal handlers can only be installed from the main thread (a run started from a
        # worker thread, as some notebooks do, keeps the default behaviour).
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
