"""The ``sessionward`` command line.

:func:`main` is the console script. It takes over SIGINT and SIGTERM before click, rich or
a driver is imported, so a signal at any moment ends the process with one line and exit
status 130 or 143, never a traceback.
"""

from __future__ import annotations

import sys

from ..shell._signals import release_signals, started, stoppable, take_signals

# Not ``typing.TYPE_CHECKING``: importing typing would delay taking over Ctrl-C.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    import click

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``sessionward`` with ``argv`` (default: the process's arguments) and exit.

    The exit statuses are the README's table. Called in-process with ``argv``, the
    previous signal handlers are restored before exiting.
    """

    previous = take_signals(exit_while_starting=argv is None)

    def run() -> int:
        # Imported only now, with Ctrl-C ours: click, rich and the drivers take a while.
        from ..shell._process import run_guarded
        from ._main import run as run_command

        started()  # from here a signal unwinds instead of exiting at once
        return run_guarded(lambda: run_command(argv))

    try:
        code = stoppable(run)
    finally:
        release_signals(previous, restore=argv is not None)
    sys.exit(code)


def __getattr__(name: str) -> click.Group:
    if name == "cli":
        from ._main import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
