"""Stopping the reaper on SIGTERM or SIGINT within a second, whatever it is doing.

Asleep, starting up (connecting, reading the audit file) or finishing, a
signal stops it at once: the handler raises ``Stopped`` where the process
is, even inside a connect to a server that never answers.  Inside a sweep
(``careful``), where an interruption would leave a decision on record without
its outcome, it lets the sweep finish, but for at most ``STOP_GRACE_SECONDS``:
then a timer raises ``Stopped`` all the same (the write-ahead audit covers
that case: the next reaper gives such a decision the outcome ``unknown``).  A
second signal stops it at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..shell._signals import take_pending

#: How long a sweep under way may take to finish after a signal.
STOP_GRACE_SECONDS = 0.5
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A signal stopped the reaper where it was.

    A ``BaseException``, so that no ``except Exception`` on the way out swallows it.
    """

    #: Raised by a signal handler (see ``shell._signals``): dropped quietly where Python
    #: cannot raise it; the switch has recorded the signal by then.
    from_signal = True

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSwitch:
    """Whether the reaper was asked to stop, and by which signal."""

    def __init__(self) -> None:
        self.event = threading.Event()
        #: The first signal received, or ``None`` (a stop asked by ``request``).
        self.signum: int | None = None
        #: Stop now: the grace ran out, or a second signal came.
        self.now = False
        self._grace_started = False
        self._careful = 0
        self._previous: dict[int, Any] = {}

    def request(self) -> None:
        """Stop after the current sweep (from any thread)."""
        self.event.set()

    def install(self) -> None:
        """Take SIGTERM and SIGINT (and SIGALRM, for the grace timer) from now on."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for signum in (*_SIGNALS, signal.SIGALRM):
            self._previous[signum] = signal.getsignal(signum)
        for signum in _SIGNALS:
            if self._previous[signum] != signal.SIG_IGN:  # a background job stays immune
                signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        # A signal that came before, while modules were being imported, may have lost
        # its exception there: it is this switch's now.
        pending = take_pending()
        if pending is not None:
            self._on_signal(pending, None)

    def restore(self) -> None:
        """Give the signals back to the handlers they had before ``install``."""
        if not self._previous:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    @contextmanager
    def careful(self) -> Iterator[None]:
        """Let a signal wait up to ``STOP_GRACE_SECONDS`` for this block to finish."""
        self._careful += 1
        try:
            yield
        finally:
            self._careful -= 1

    def start_grace(self) -> None:
        """After a signal, give what is left to do ``STOP_GRACE_SECONDS`` in all."""
        if self.signum is not None and self._previous and not self._grace_started:
            self._grace_started = True
            signal.setitimer(signal.ITIMER_REAL, STOP_GRACE_SECONDS)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        self.event.set()
        if first and self._careful:
            self.start_grace()
            return
        self.now = not first
        raise Stopped(signum)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:  # not ours: a timer left by someone else
            return
        self.now = True
        raise Stopped(self.signum)
