"""sessionward's Django engines name each session's origin: what the server sees.

The app runs in a child process (``_origin_app``), so its program name, pid and
code lines are its own.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

from sessionward.core import Origin, parse_origin
from tests.integrations.django_outside.conftest import ROOT, App, Child
from tests.integrations.django_project import clean_environ
from tests.integrations.sqlalchemy.conftest import wait_until

HOST = socket.gethostname()
SCRIPT = "tests/integrations/django_outside/_origin_app.py"
SERVICE = "_origin_app.py"
OURS = {"SW_OUT_ENGINE": "sessionward", "SW_OUT_PERSISTENT": "1"}


class OriginChild(Child):
    """``_origin_app SCENARIO`` in a child process."""

    def __init__(self, scenario: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integrations.django_outside._origin_app", scenario],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()


def start(app: App, scenario: str, options: dict[str, Any] | None = None) -> OriginChild:
    from sessionward.core import parse_target

    target = parse_target(app.server.url)
    child = OriginChild(
        scenario,
        clean_environ(
            SW_OUT_DRIVER=app.driver,
            SW_OUT_NAME=app.database,
            SW_OUT_HOST=target.host or "",
            SW_OUT_PORT=str(target.port or ""),
            SW_OUT_USER=target.user or "",
            SW_OUT_PASSWORD=target.password or "",
            SW_OUT_OPTIONS=json.dumps(options or {}),
            **OURS,
        ),
    )
    app.children.append(child)
    return child


def idle_session(app: App, options: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The child's session idle in a transaction: its message, name, state and query."""
    child = start(app, "idle", options)
    try:
        message = child.expect("idle")
        ((name, state, query),) = app.server.execute(
            "SELECT application_name, state, query FROM pg_stat_activity WHERE pid = %s",
            (message["pid"],),
        )
        return message, child.proc.pid, name, state, query
    finally:
        child.go()
        child.close()


def test_an_idle_transaction_names_its_service_thread_and_line(pg_app: App) -> None:
    message, pid, name, state, query = idle_session(pg_app)
    assert name == f"{SERVICE}[{pid}]@{HOST}"[:63]
    assert state == "idle in transaction"
    assert query.startswith("SELECT pg_backend_pid() /*sw_")
    assert parse_origin(name, query) == Origin(
        service=SERVICE, host=HOST, pid=pid, holder="MainThread", code=f"{SCRIPT}:{message['line']}"
    )


def test_origin_false_sends_nothing(pg_app: App) -> None:
    _, _, name, _, query = idle_session(pg_app, {"origin": False})
    assert name == ""
    assert query == "SELECT pg_backend_pid()"


def test_a_service_name_and_a_users_application_name(pg_app: App) -> None:
    _, pid, name, _, _ = idle_session(pg_app, {"origin": "billing"})
    assert name == f"billing[{pid}]@{HOST}"[:63]
    _, _, mine, _, tagged = idle_session(pg_app, {"application_name": "mine"})
    assert mine == "mine"
    origin = parse_origin(mine, tagged)
    assert origin is not None
    assert origin.pid is not None  # the statements still carry the origin


def test_a_running_statement_shows_its_origin_on_postgresql(pg_app: App) -> None:
    message, pid, info = running_statement(
        pg_app,
        "SELECT query FROM pg_stat_activity "
        "WHERE datname = %s AND state = 'active' AND query LIKE 'SELECT pg_sleep(2)%%'",
    )
    assert parse_origin(None, info) == Origin(
        service=SERVICE, host=HOST, pid=pid, holder="sw-worker", code=f"{SCRIPT}:{message['line']}"
    )


def test_a_running_statement_shows_its_origin_on_mariadb(mysql_app: App) -> None:
    message, pid, info = running_statement(
        mysql_app,
        "SELECT INFO FROM information_schema.PROCESSLIST "
        "WHERE DB = %s AND INFO LIKE 'SELECT SLEEP(2)%%'",
    )
    assert parse_origin(None, info) == Origin(
        service=SERVICE, host=HOST, pid=pid, holder="sw-worker", code=f"{SCRIPT}:{message['line']}"
    )


def running_statement(app: App, query: str) -> tuple[dict[str, Any], int, str]:
    """The child's two-second statement as the server shows it while it runs (the child
    then runs an ``executemany`` with a ``%`` in its parameters, and must not fail)."""
    child = start(app, "running")
    try:
        message = child.expect("running")
        rows: list[Any] = []

        def found() -> bool:
            rows[:] = app.server.execute(query, (app.database,))
            return bool(rows)

        wait_until("the statement shows on the server", found)
        child.expect("done")
    finally:
        child.close()
    ((info,),) = rows
    return message, child.proc.pid, info


def test_bad_origin_options_are_refused_at_connect() -> None:
    from sessionward.core import ConfigurationError
    from sessionward.integrations.django._origin import settings_of, statement_origin

    for bad in ({"origin": ""}, {"origin": 3}, {"origin_max_bytes": -1}):
        with pytest.raises(ConfigurationError, match="OPTIONS"):
            settings_of(bad)
        assert statement_origin(bad) is None
    assert settings_of({}) == (settings_of({"origin": True})[0], 512)
    assert settings_of({"origin": "billing", "origin_max_bytes": 64}) == ("billing", 64)


def test_django_reports_the_statements_as_before(pg_app: App) -> None:
    reports_as_before(pg_app, "SELECT pg_backend_pid()")


def test_django_reports_the_statements_as_before_on_mariadb(mysql_app: App) -> None:
    reports_as_before(mysql_app, "SELECT CONNECTION_ID()")


def reports_as_before(app: App, statement: str) -> None:
    child = start(app, "queries")
    try:
        message = child.expect("queries")
    finally:
        child.close()
    assert message["wrapped"] == [statement]  # execute_wrappers
    assert message["captured"] == [statement]  # connection.queries
    assert message["tagged"] is True  # the cursor Django made appends the comment
    assert message["ours"] is False  # and the connection kept its own cursor class
