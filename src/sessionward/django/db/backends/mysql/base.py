"""The engine's ``DatabaseWrapper``: Django's MySQL one with sessionward's mixin.

Built when Django first asks for it, because importing Django's MySQL backend
fails without ``MySQLdb`` (mysqlclient, or PyMySQL installed under that name).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _wrapper_class() -> type[Any]:
    from django.db.backends.mysql import base as django_base  # type: ignore[import-untyped]

    from .....integrations.django._engine import SessionwardWrapperMixin

    class DatabaseWrapper(SessionwardWrapperMixin, django_base.DatabaseWrapper):  # type: ignore[misc]
        """Django's MySQL wrapper with timeouts, a liveness check and session names."""

        __module__ = __name__

    return DatabaseWrapper


def __getattr__(name: str) -> Any:
    if name == "DatabaseWrapper":
        return _wrapper_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
