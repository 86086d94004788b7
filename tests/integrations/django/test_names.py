"""The classes handed to Django read, import and pickle like Django's own."""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import pytest

import sessionward.django
from sessionward.django.management.commands import endsessions, sessions

MYSQLDB_MISSING = "mysqlclient not installed (needs libmariadb-dev and pkg-config to build)"


def _engine_base(vendor: str) -> Any:
    if vendor == "mysql":
        # Django's MySQL engine, and so ours, needs the real MySQLdb to import.
        pytest.importorskip("MySQLdb", reason=MYSQLDB_MISSING)
    return importlib.import_module(f"sessionward.django.db.backends.{vendor}.base")


@pytest.mark.parametrize("vendor", ["postgresql", "mysql"])
def test_the_engines_database_wrapper_reads_like_djangos(vendor: str) -> None:
    base = _engine_base(vendor)
    django_base = importlib.import_module(f"django.db.backends.{vendor}.base")
    wrapper = base.DatabaseWrapper

    assert wrapper.__name__ == wrapper.__qualname__ == "DatabaseWrapper"
    assert wrapper.__module__ == f"sessionward.django.db.backends.{vendor}.base"
    assert issubclass(wrapper, django_base.DatabaseWrapper)
    assert pickle.loads(pickle.dumps(wrapper)) is wrapper
    namespace: dict[str, Any] = {}
    exec(f"from sessionward.django.db.backends.{vendor}.base import DatabaseWrapper", namespace)
    assert namespace["DatabaseWrapper"] is wrapper
    settings = {"ENGINE": f"sessionward.django.db.backends.{vendor}", "NAME": "shop"}
    connection = wrapper(settings, alias="default")
    assert repr(connection) == f"<DatabaseWrapper vendor={vendor!r} alias='default'>"


@pytest.mark.parametrize(
    "cls",
    [
        sessionward.django.TestRunner,
        sessionward.django.SessionwardTestRunnerMixin,
        sessionward.django.ThreadPoolExecutor,
        sessionward.django.fresh_connections,
    ],
    ids=lambda cls: cls.__name__,
)
def test_public_classes_name_the_module_users_import_them_from(cls: type) -> None:
    assert cls.__module__ == "sessionward.django"
    assert cls.__qualname__ == cls.__name__
    assert getattr(sessionward.django, cls.__name__) is cls
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert repr(cls) == f"<class 'sessionward.django.{cls.__name__}'>"


@pytest.mark.parametrize("module", [sessions, endsessions], ids=lambda m: m.__name__)
def test_management_commands_are_named_like_djangos(module: Any) -> None:
    command = module.Command

    assert command.__name__ == command.__qualname__ == "Command"
    assert command.__module__ == module.__name__
    assert pickle.loads(pickle.dumps(command)) is command
