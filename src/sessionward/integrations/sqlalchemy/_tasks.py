"""The asyncio task a connection is checked out for, as ``holders()`` names it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
import weakref
from typing import Any

from .._origin import holder_name, thread_holder

#: The name asyncio gives a task that was not named: ``Task-<counter>``.
_UNNAMED = "Task-"

_current_task = asyncio.current_task
#: The task named last, by a weak reference (a finished task, and what it holds, is not
#: kept alive here), its name then, and ``task_names()``'s answer for it: a task
#: usually checks out again and again, and its names are worked out once.
_last: tuple[Any, str, str | None, str] = (lambda: None, "", None, "")


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


def task_names() -> tuple[str | None, str]:
    """``current_task_name()`` and the holder origins key comments by
    (``sessionward.integrations._origin.task_holder()``), from one look at the running
    task: a checkout under an ``AsyncEngine`` needs both.

    >>> task_names() == (None, thread_holder())
    True
    >>> async def serve():
    ...     shown, holder = task_names()
    ...     return shown == current_task_name(), holder, task_names() == (shown, holder)
    >>> asyncio.run(serve())
    (True, 'Task (serve)', True)
    """
    global _last
    try:
        task = _current_task()
    except RuntimeError:  # no event loop in this thread
        task = None
    if task is None:
        return None, thread_holder()
    name = task.get_name()
    last = _last
    if last[0]() is task and last[1] == name:  # renamed since: worked out again
        return last[2], last[3]
    shown, holder = name, holder_name(name)
    qualname = getattr(task.get_coro(), "__qualname__", None)
    if isinstance(qualname, str):  # as current_task_name() and task_holder() add it
        short = qualname.rpartition("<locals>.")[2]
        if name.startswith(_UNNAMED):
            shown = f"{name} ({short})"
        if holder == "Task":
            holder = f"Task ({short})"
    with contextlib.suppress(TypeError):  # a task-like object without weak references
        _last = (weakref.ref(task), name, shown, holder)
    return shown, holder


def task_stack() -> str:
    """The whole stack of a checkout under an ``AsyncEngine``: the application's
    coroutines, waiting in the greenlet that spawned SQLAlchemy's (``gr_frame`` is
    greenlet's public view of where it waits), then SQLAlchemy's greenlet itself."""
    greenlet = sys.modules.get("greenlet")
    parent = greenlet.getcurrent().parent if greenlet is not None else None
    waiting = parent.gr_frame if parent is not None else None
    outer = traceback.format_stack(waiting) if waiting is not None else []
    return "".join(outer + traceback.format_stack(sys._getframe(1)))
