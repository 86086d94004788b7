"""Take SIGINT and SIGTERM over: the first thing the ``sessionward`` console script does.

Until then a Ctrl-C is Python's, which prints a traceback; so this module is imported
before anything else of the command line and imports nothing that takes time.

The handler raises, but it also records the signal: an exception raised from a
handler while modules are still being imported can be lost (CPython drops it inside
``compile``) or wrapped (``__set_name__`` turns it into a ``RuntimeError`` before
3.12).  So the record, not the exception, is what says a signal came:
:func:`raise_pending` re-raises a lost one once the imports are done, a long-running
command takes it over with :func:`take_pending`, and :func:`stoppable` reports it.
"""

from __future__ import annotations

import os
import sys

# Not ``typing.TYPE_CHECKING``: importing typing would delay taking over Ctrl-C.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import FrameType
    from typing import TypeAlias

    Handler: TypeAlias = Callable[[int, FrameType | None], object] | int | signal.Handlers | None
else:
    try:
        # The C module under ``signal``: the same functions without importing enum, which
        # takes long enough at start-up for a Ctrl-C to land before our handler.
        import _signal as signal
    except ImportError:  # not CPython
        import signal

SIGINT = int(signal.SIGINT)
SIGTERM = int(signal.SIGTERM)
SIGPIPE = int(signal.SIGPIPE)
EXIT_INTERRUPTED = 128 + SIGINT  # 130, as a shell reports a Ctrl-C
EXIT_TERMINATED = 128 + SIGTERM  # 143, as a shell reports SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: unwind like a Ctrl-C, closing connections on the way out.

    A ``BaseException`` so that no ``except Exception`` in between swallows it.
    """


#: The signal received since ``take_signals``, whether or not its exception got through.
_received: list[int] = []


def _stop_now(signum: int, frame: FrameType | None) -> None:
    # A second signal while the first unwinds means "now": no cleanup, no traceback.
    os._exit(128 + signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    for each in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(each) is _on_signal:
            signal.signal(each, _stop_now)
    if signum == signal.SIGINT:
        # KeyboardInterrupt, not our own class: drivers cancel the running statement on it.
        raise KeyboardInterrupt
    raise Terminated


def take_signals() -> dict[int, Handler]:
    """Turn SIGINT into ``KeyboardInterrupt`` and SIGTERM into ``Terminated``.

    Returns the handlers replaced. A signal ignored when the process started (a
    background job) stays ignored; outside the main thread nothing changes.
    """
    previous: dict[int, Handler] = {}
    _received.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        if current == signal.SIG_IGN:
            continue
        try:
            signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread
            break
        previous[signum] = current
    return previous


def received_signal() -> int | None:
    """The signal received since ``take_signals`` and not taken over, if any."""
    return _received[0] if _received else None


def take_pending() -> int | None:
    """Take over the signal received so far (a command that stops on its own terms)."""
    signum = received_signal()
    _received.clear()
    return signum


def raise_pending() -> None:
    """Raise the exception of a signal whose own exception was lost on the way."""
    signum = received_signal()
    if signum == SIGINT:
        raise KeyboardInterrupt
    if signum is not None:
        raise Terminated


def release_signals(previous: dict[int, Handler], *, restore: bool) -> None:
    """Put the handlers back (an in-process caller), or leave a quiet exit in their place.

    Without ``restore`` the work is done and reported: a signal arriving now only sets
    the exit status, so it cannot print a traceback on the way out.
    """
    for signum, handler in previous.items():
        if restore:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        else:
            signal.signal(signum, _stop_now)


def stoppable(run: Callable[[], int]) -> int:
    """Run ``run``; a SIGINT or SIGTERM that stops it is one line and its exit status."""
    try:
        code = run()
        raise_pending()  # the work got done, but the caller asked it to stop: say so
        return code
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        say("terminated")
        return EXIT_TERMINATED


def say(line: str) -> None:
    """Write one line to stderr; a stderr that cannot take it is not worth a traceback."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"sessionward: {line}\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
