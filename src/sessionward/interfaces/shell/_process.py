"""The edges of the ``sessionward`` process: output failures and exit statuses.

Signals are taken over earlier, by :mod:`._signals`; this module maps what a command
leaves behind (an exception, a failing standard output) to one stderr line and a status.
"""

from __future__ import annotations

import errno
import os
import sys

from ._signals import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    SIGPIPE,
    Terminated,
    raise_pending,
    say,
)

# Not ``typing.TYPE_CHECKING``: see ._signals.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

__all__ = [
    "EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_NOT_ALL_ENDED",
    "EXIT_OK", "EXIT_TERMINATED", "OutputFailed", "Terminated", "internal_error", "run_guarded",
    "say",
]  # fmt: skip

#: Exit statuses; the README's table lists them and a test runs a case for each.
EXIT_OK = 0
EXIT_NOT_ALL_ENDED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 128 + SIGPIPE  # 141, as a shell reports SIGPIPE


class OutputFailed(Exception):
    """Standard output cannot be written: a full disk, a closed descriptor, a gone reader."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error


class _GuardedOutput:
    """Standard output whose write failures are told apart from every other ``OSError``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            raise OutputFailed(error) from error

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            raise OutputFailed(error) from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def silence_stdout() -> None:
    """Point standard output at /dev/null, so the flush at exit neither fails nor warns."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real descriptor (an in-process caller's capture): nothing to flush


def run_guarded(run: Callable[[], int]) -> int:
    """Run the command and map what escapes it to one stderr line and an exit status."""
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _GuardedOutput(stdout)
    try:
        if stdout is None:
            raise OutputFailed(OSError(errno.EBADF, "it is closed"))
        code = run()
        sys.stdout.flush()
        return code
    except OutputFailed as failed:
        silence_stdout()
        if failed.error.errno == errno.EPIPE:
            # The reader went away (``| head``): say nothing, as cat and grep do.
            return EXIT_BROKEN_PIPE
        say(f"error: cannot write to standard output: {failed}")
        return EXIT_ERROR
    finally:
        sys.stdout = stdout


def internal_error(error: BaseException) -> int:
    """A bug: one line, the traceback only with ``SESSIONWARD_DEBUG``.

    Unless a signal came: then the error is most likely its exception, wrapped
    (``__set_name__`` does so before Python 3.12), and the signal is the answer.
    """
    raise_pending()
    if os.environ.get("SESSIONWARD_DEBUG"):
        raise error
    from ...core import redact_url
    from .._text import printable

    say(
        f"internal error: {type(error).__name__}: {printable(redact_url(str(error)))} "
        "(set SESSIONWARD_DEBUG=1 for the traceback, and please report it)"
    )
    return EXIT_INTERNAL
