"""Take SIGINT and SIGTERM over: the first thing the ``sessionward`` console script does.

Until then a Ctrl-C is Python's, which prints a traceback; so this module is imported
before anything else of the command line and imports nothing that takes time.

While the console script is still importing its modules, a signal ends the
process at once: nothing is open yet, and an exception raised from a handler
among the imports can be lost (CPython drops it inside ``compile``) or wrapped
(``__set_name__`` turns it into a ``RuntimeError`` before 3.12).  Once they are
imported (:func:`started`), the handler raises, so connections are closed on the
way out, and records the signal: a later lazy import may still lose the
exception, so the record is what says a signal came: a long-running command
takes it over with :func:`take_pending`, :func:`raise_pending` re-raises it, and
:func:`stoppable` reports it.
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
    from typing import Any, TypeAlias

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

    #: Raised by a signal handler: where Python cannot raise it (a weakref callback
    #: inside the import machinery), it is dropped quietly; the signal is recorded.
    from_signal = True


def _quiet_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` of the console script: a signal's exception that Python
    could only report as "Exception ignored in …" is not printed (the signal was
    recorded and is acted on); anything else is reported as before."""
    kind = unraisable.exc_type
    if isinstance(kind, type) and (
        issubclass(kind, KeyboardInterrupt) or getattr(kind, "from_signal", False)
    ):
        return
    _default_unraisable(unraisable)


_default_unraisable = sys.unraisablehook


#: The signal received since ``take_signals``, whether or not its exception got through.
_received: list[int] = []
#: Whether the command line is still importing its modules: a signal then exits at once.
_starting: list[bool] = [False]


def _stop_now(signum: int, frame: FrameType | None) -> None:
    # A second signal while the first unwinds means "now": no cleanup, no traceback.
    os._exit(128 + signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if _starting[0]:
        # Nothing is open yet, and an exception raised among the imports may be lost
        # (inside ``compile``) or wrapped: exit now, as the signal asked.
        say("interrupted" if signum == SIGINT else "terminated")
        os._exit(128 + signum)
    for each in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(each) is _on_signal:
            signal.signal(each, _stop_now)
    if signum == signal.SIGINT:
        # KeyboardInterrupt, not our own class: drivers cancel the running statement on it.
        raise KeyboardInterrupt
    raise Terminated


def take_signals(*, exit_while_starting: bool = False) -> dict[int, Handler]:
    """Turn SIGINT into ``KeyboardInterrupt`` and SIGTERM into ``Terminated``.

    Returns the handlers replaced. A signal ignored when the process started (a
    background job) stays ignored; outside the main thread nothing changes.
    ``exit_while_starting`` (the console script): until :func:`started`, a signal
    ends the process at once with its status.
    """
    previous: dict[int, Handler] = {}
    _received.clear()
    _starting[0] = exit_while_starting
    if exit_while_starting:  # the console script's own process, not an in-process caller's
        sys.unraisablehook = _quiet_unraisable
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


def started() -> None:
    """The command line's modules are imported: from now on a signal unwinds, closing
    what is open on the way out."""
    _starting[0] = False
    raise_pending()


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
