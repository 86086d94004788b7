"""``DatabaseWrapper``: sessionward's, for the vendor of ``SW_OUT_DRIVER``, with an
``is_usable()`` of its own, as a user's backend subclass overrides it."""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

_VENDOR = "mysql" if os.environ.get("SW_OUT_DRIVER") in ("pymysql", "mysqlclient") else "postgresql"
_ours: Any = import_module(f"sessionward.django.db.backends.{_VENDOR}.base")


class DatabaseWrapper(_ours.DatabaseWrapper):  # type: ignore[misc]
    #: While true, every health check fails.
    refuse = False
    #: How many times is_usable() said no.
    refusals = 0

    def is_usable(self) -> bool:
        if self.refuse:
            self.refusals += 1
            return False
        return bool(super().is_usable())
