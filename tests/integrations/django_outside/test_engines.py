"""The engines ``sessionward.django.db.backends.postgresql`` and ``.mysql``, for real.

``manage.py check`` and requests through Django's test client; the server's
view of each session (``application_name``, the timeouts from ``OPTIONS``);
and a restart of a server of our own between two requests, with Django's own
engine as the control.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessionward.integrations.django._engine import (
    DEFAULT_PING_AFTER_SECONDS as PING_AFTER_SECONDS,
)
from tests.fix_servers import Server, missing_server
from tests.integrations.django_outside.conftest import App
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres

OURS = {"SW_OUT_ENGINE": "sessionward", "SW_OUT_PERSISTENT": "1"}
PLAIN = {"SW_OUT_ENGINE": "django", "SW_OUT_PERSISTENT": "1"}


def requests(
    app: App, env: dict[str, str], between: Any = None, after: Any = None
) -> list[dict[str, Any]]:
    """Three requests; ``between`` runs after the first, ``after`` after the last."""
    child = app.start("requests", **env)
    child.expect("checked")
    responses = [child.expect("response")]
    if between is not None:
        between()
    child.go()
    responses.append(child.expect("response"))
    child.go()
    responses.append(child.expect("response"))
    if after is not None:
        after()
    child.go()
    child.close()
    return responses


def sessionward_ls(app: App) -> list[dict[str, Any]]:
    """``sessionward ls --json`` on the app's database, as a user runs it."""
    completed = subprocess.run(
        [sys.executable, "-m", "sessionward", "ls", "--json", "--dsn", app.server.url,
         "--database", app.database],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    sessions: list[dict[str, Any]] = json.loads(completed.stdout)["sessions"]
    return sessions


def test_check_and_requests_on_postgresql(pg_app: App) -> None:
    listed: list[dict[str, Any]] = []
    responses = requests(
        pg_app,
        {**OURS, "SW_OUT_TIMEOUTS": "1"},
        after=lambda: listed.extend(sessionward_ls(pg_app)),
    )

    assert [r["status"] for r in responses] == [200, 200, 200]
    first = responses[0]
    # One persistent connection, named after the program, its pid and host (origin).
    assert {r["pid"] for r in responses} == {first["pid"]}
    assert re.fullmatch(r"_app\.py\[[0-9]+\]@.+", first["application_name"])
    assert first["statement"] == "7s"  # OPTIONS["sessionward_timeouts"]
    # sessionward ls says which process and thread hold the session.
    assert [(s["pid"], s["application"]) for s in listed] == [
        (first["pid"], first["application_name"])
    ]


def test_check_and_requests_on_mariadb(mysql_app: App) -> None:
    responses = requests(mysql_app, {**OURS, "SW_OUT_TIMEOUTS": "1"})

    assert [r["status"] for r in responses] == [200, 200, 200]
    assert {r["pid"] for r in responses} == {responses[0]["pid"]}
    assert float(responses[0]["statement"]) == 7.0  # max_statement_time from OPTIONS


# --------------------------------------------------------------------------- restarts


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_mariadb() -> Iterator[OwnMariaDB]:
    reason = OwnMariaDB.available()
    if reason:
        missing_server(f"no throwaway MariaDB: {reason}")
    server = OwnMariaDB()
    server.start()
    yield server
    server.stop()


def restart_between(app: App, restart: Any, env: dict[str, str]) -> list[dict[str, Any]]:
    return requests(app, env, between=restart)


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_restart_between_requests_fails_none_on_postgresql(
    own_pg: OwnPostgres, driver: str
) -> None:
    app = App(Server("own-pg", "postgresql", own_pg.url), driver)
    try:
        control = restart_between(app, own_pg.restart, PLAIN)
        ours = restart_between(app, own_pg.restart, OURS)
    finally:
        app.close()

    # Django's own engine hands the dead connection to the next request (and,
    # under the test client, which skips close_old_connections, to every later one).
    assert control[1]["status"] is None
    assert control[1]["kind"] in ("SessionTerminated", "ConnectionLost")
    assert [r["status"] for r in ours] == [200, 200, 200]
    assert ours[1]["pid"] != ours[0]["pid"]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="a throwaway mariadbd needs POSIX")
def test_a_restart_between_requests_fails_none_on_mariadb(own_mariadb: OwnMariaDB) -> None:
    app = App(Server("own-mariadb", "mysql", own_mariadb.url), "pymysql")
    try:
        # PyMySQL gives no socket to look at: the engine pings a connection idle
        # for more than a second, so the restart leaves it idle at least that long.
        def restart() -> None:
            started = time.monotonic()
            own_mariadb.restart()
            time.sleep(max(0.0, started + PING_AFTER_SECONDS + 0.1 - time.monotonic()))

        control = restart_between(app, restart, PLAIN)
        ours = restart_between(app, restart, OURS)
    finally:
        app.close()

    assert control[1]["status"] is None
    assert control[1]["kind"] == "ConnectionLost"
    assert [r["status"] for r in ours] == [200, 200, 200], str(ours)
