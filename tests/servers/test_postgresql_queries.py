"""The PostgreSQL adapter without a server: its SQL files, the version ladder, the driver hint."""

from __future__ import annotations

import re
import sys
from dataclasses import fields

import pytest

import sessionward.servers.postgresql as adapter
from sessionward.core import ConfigurationError, DriverNotInstalled, parse_target
from sessionward.servers.postgresql._queries import (
    MIN_VERSION_NUM,
    Queries,
    load,
    queries_for,
    query_names,
)

#: One version of every supported major, plus the oldest and a future one.
SUPPORTED = (130000, 130016, 140000, 140013, 150020, 160006, 170002, 180000, 180003)
FUTURE = 190000


def texts(queries: Queries) -> set[str]:
    return {getattr(queries, f.name) for f in fields(queries)} - {None}


def test_package_exports_only_the_backend():
    assert adapter.__all__ == ["PostgresBackend"]
    assert adapter.PostgresBackend.__name__ == "PostgresBackend"


@pytest.mark.parametrize("version_num", [*SUPPORTED, FUTURE])
def test_every_supported_version_resolves_every_query(version_num):
    queries = queries_for(version_num)
    for f in fields(queries):
        text = getattr(queries, f.name)
        if f.name == "wait_backend" and version_num < 140000:
            assert text is None
        else:
            assert isinstance(text, str)
            assert text.strip(), f.name


def test_every_sql_file_is_used_by_some_supported_version():
    used = set().union(*(texts(queries_for(v)) for v in SUPPORTED))
    shipped = {name: load(name) for name in query_names()}
    unused = sorted(name for name, text in shipped.items() if text not in used)
    assert unused == []
    assert len(shipped) == 18


def test_versions_before_13_are_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"PostgreSQL 12\.22 is not supported"):
        queries_for(120022)
    with pytest.raises(ConfigurationError, match=r"PostgreSQL 9\.6\.24 is not supported"):
        queries_for(90624)
    assert queries_for(MIN_VERSION_NUM)


def test_postgresql_13_has_no_waitstart_and_polls_for_exit():
    old, new = queries_for(130016), queries_for(140000)
    assert "l.waitstart" not in old.list_sessions
    assert "NULL::timestamptz AS waitstart" in old.list_sessions
    assert "l.waitstart" in new.list_sessions
    assert old.wait_backend is None
    assert new.wait_backend is not None
    assert "pg_terminate_backend" in new.wait_backend
    # The two list variants differ only where 13 lacks the column.
    differing = [
        (a, b)
        for a, b in zip(old.list_sessions.splitlines(), new.list_sessions.splitlines(), strict=True)
        if a != b
    ]
    assert len(differing) == 2


@pytest.mark.parametrize("name", sorted(query_names()))
def test_sql_files_follow_the_house_rules(name):
    assert re.fullmatch(r"[a-z]+_[a-z]+(?:_[a-z]+)*?(?:_post_\d{6})?", name)
    text = load(name)
    assert text.splitlines()[0].startswith("-- ")
    # Values are bound as %(name)s; any other % would confuse psycopg.
    assert re.sub(r"%\([a-z_]+\)s", "", text).count("%") == 0
    # Listing queries leave our own backend out.
    if name.startswith("list_"):
        assert "pid <> pg_catalog.pg_backend_pid()" in text


def test_queries_are_loaded_once():
    assert load("get_server") is load("get_server")


def test_missing_driver_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DriverNotInstalled, match=r"pip install 'sessionward\[postgresql\]'"):
        adapter.PostgresBackend.connect(
            parse_target("postgresql://app@db/x"), statement_timeout_seconds=5
        )


def test_negative_statement_timeout_is_refused():
    with pytest.raises(ConfigurationError, match="statement timeout"):
        adapter.PostgresBackend.connect(
            parse_target("postgresql://app@db/x"), statement_timeout_seconds=-1
        )
