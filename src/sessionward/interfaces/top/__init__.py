"""``sessionward top``: sessions and the blocker forest, one frame or live."""

from __future__ import annotations

import click

from ._cli import top_command

__all__ = ["register", "top_command"]


def register(group: click.Group) -> None:
    """Add ``top``, ``record`` and ``history`` to the ``sessionward`` command group."""
    from ..recorder import history_command, record_command

    group.add_command(top_command)
    group.add_command(record_command)
    group.add_command(history_command)
