"""The asyncio task a connection is checked out for, as ``holders()`` names it."""

from __future__ import annotations

import asyncio
import sys
import traceback

#: The name asyncio gives a task that was not named: ``Task-<counter>``.
_UNNAMED = "Task-"


def current_task_name() -> str | None:
    """The running task's name; an unnamed one (``Task-7``) with its coroutine's name
    (``Task-7 (serve)``); None outside a task.

    SQLAlchemy's async engine runs pool events in a greenlet inside the task's step,
    so ``asyncio.current_task()`` is the application's task there.

    >>> current_task_name() is None
    True
    >>> async def serve():
    ...     return current_task_name()
    >>> asyncio.run(serve()).endswith(" (serve)")
    True
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None
    if task is None:
        return None
    name = task.get_name()
    if name.startswith(_UNNAMED):
        qualname = getattr(task.get_coro(), "__qualname__", None)
        if isinstance(qualname, str):
            return f"{name} ({qualname.rpartition('<locals>.')[2]})"
    return name


def task_stack() -> str:
    """The whole stack of a checkout under an ``AsyncEngine``: the application's
    coroutines, waiting in the greenlet that spawned SQLAlchemy's (``gr_frame`` is
    greenlet's public view of where it waits), then SQLAlchemy's greenlet itself."""
    greenlet = sys.modules.get("greenlet")
    parent = greenlet.getcurrent().parent if greenlet is not None else None
    waiting = parent.gr_frame if parent is not None else None
    outer = traceback.format_stack(waiting) if waiting is not None else []
    return "".join(outer + traceback.format_stack(sys._getframe(1)))
