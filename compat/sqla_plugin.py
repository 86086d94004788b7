"""pytest plugin for SQLAlchemy's own test suite: every engine gets sessionward's plugin.

Loaded by ``compat/run.py`` with ``-p sqla_plugin``. With ``COMPAT_SESSIONWARD=1``
it wraps ``sqlalchemy.create_engine`` so that each engine made for a PostgreSQL
or MySQL/MariaDB URL with a driver sessionward supports gets
``plugins=["sessionward"]`` (the ``sqlalchemy.plugins`` entry point), as a user
would configure it, including the engines the suite builds around mock DBAPIs.
Engines for other databases (SQLite, the suite's fake ``foo://`` URLs) stay
plain. Replacing ``create_engine`` is test scaffolding of this harness only:
the suite calls it from many places and SQLAlchemy has no hook that adds a
plugin to every engine; sessionward itself never patches SQLAlchemy.

At the end it prints how many engines were made with and without the plugin,
and writes those counts to ``$COMPAT_ENGINE_COUNTS`` when set.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

# Drivers sessionward's harden() supports, and SQLAlchemy's default driver per backend.
_SUPPORTED = {"psycopg", "psycopg2", "pymysql", "mysqldb"}
_DEFAULT_DRIVER = {"postgresql": "psycopg2", "mysql": "mysqldb", "mariadb": "mysqldb"}

_counts: Counter[str] = Counter()


def _wants_plugin(url: Any, kwargs: dict[str, Any]) -> bool:
    backend = url.get_backend_name()
    if backend not in _DEFAULT_DRIVER:
        return False
    driver = url.drivername.partition("+")[2] or _DEFAULT_DRIVER[backend]
    if driver not in _SUPPORTED:
        return False
    already = list(kwargs.get("plugins") or ()) + list(url.query.get("plugin", ()))
    return "sessionward" not in already


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Before SQLAlchemy's own sessionstart, which makes the suite's main
    # engine, and before test modules import create_engine by name.
    if os.environ.get("COMPAT_SESSIONWARD") != "1":
        return
    import sqlalchemy
    import sqlalchemy.engine
    import sqlalchemy.engine.create
    from sqlalchemy.engine import make_url

    original = sqlalchemy.engine.create.create_engine

    def create_engine(url: Any, **kwargs: Any) -> Any:
        if _wants_plugin(make_url(url), kwargs):
            kwargs["plugins"] = [*(kwargs.get("plugins") or ()), "sessionward"]
            _counts["with sessionward"] += 1
        else:
            _counts["plain"] += 1
        return original(url, **kwargs)

    for module in (sqlalchemy, sqlalchemy.engine, sqlalchemy.engine.create):
        setattr(module, "create_engine", create_engine)  # noqa: B010 (a module attribute)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("COMPAT_SESSIONWARD") != "1":
        return
    terminalreporter.write_line(
        f"compat: engines created with the sessionward plugin: {_counts['with sessionward']}, "
        f"without (unsupported URL): {_counts['plain']}"
    )
    target = os.environ.get("COMPAT_ENGINE_COUNTS")
    if target:
        Path(target).write_text(json.dumps(dict(_counts)))
