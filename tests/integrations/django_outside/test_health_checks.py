"""Django's health-check contract with sessionward's engines, on real servers.

With ``CONN_HEALTH_CHECKS`` Django decides through ``is_usable()`` once per
request: a backend subclass whose ``is_usable()`` says no gets a new
connection, and ours answers without a round trip while the socket is quiet.
A session killed from outside is replaced at the next request (Django's check)
and within a request (the engine's own look before every cursor).
"""

from __future__ import annotations

import time
from typing import Any

from sessionward.integrations.django._engine import DEFAULT_PING_AFTER_SECONDS
from tests.integrations.django_outside.conftest import App

HEALTH = {"SW_OUT_HEALTH_CHECKS": "1", "SW_OUT_PERSISTENT": "1"}


def run_health(app: App) -> dict[str, Any]:
    child = app.start("health", SW_OUT_ENGINE="refusing", **HEALTH)
    result = child.expect("health")
    sessions = app.sessions_once_gone_but(result["replaced"])
    child.go()
    child.close()
    result["sessions"] = sessions
    return result


def check_a_refusing_is_usable_is_obeyed(app: App) -> None:
    result = run_health(app)

    # A quiet socket: Django's check passed through our is_usable() without a round
    # trip.  PyMySQL shows no socket: there it pings, as Django's own engine does.
    assert result["kept"] == result["first"]
    assert result["quiet_round_trips"] == (1 if app.driver == "pymysql" else 0)
    # The subclass said no once: Django closed the connection and opened another.
    assert result["refusals"] == 1
    assert result["replaced"] != result["first"]
    assert result["still"] == result["replaced"]
    # The old session is gone from the server; only the new one is left.
    assert result["sessions"] == {result["replaced"]}
    assert result["repr"].startswith("<DatabaseWrapper vendor=")


def test_a_refusing_is_usable_is_obeyed_on_postgresql(pg_app: App) -> None:
    check_a_refusing_is_usable_is_obeyed(pg_app)


def test_a_refusing_is_usable_is_obeyed_on_mariadb(mysql_app: App) -> None:
    check_a_refusing_is_usable_is_obeyed(mysql_app)


def run_killed(app: App, engine: str) -> list[dict[str, Any]]:
    """Kill the session while idle, then query: after a request start, then within one."""
    child = app.start("killed", SW_OUT_ENGINE=engine, **HEALTH)
    afters = []
    for step in ("request", "cursor"):
        idle = child.expect("idle")
        idle_since = time.monotonic()
        assert idle["step"] == step
        app.terminate(idle["pid"])
        if app.driver == "pymysql":
            # No socket to look at: the engine pings what sat idle past the ping delay.
            time.sleep(max(0.0, idle_since + DEFAULT_PING_AFTER_SECONDS + 0.1 - time.monotonic()))
        child.go()
        after = child.expect("after")
        afters.append({**after, "killed": idle["pid"]})
        if not after["ok"]:
            break
    child.go()
    child.close()
    return afters


def check_a_killed_session_is_replaced(app: App) -> None:
    control = run_killed(app, "django")
    ours = run_killed(app, "sessionward")

    # Django's own check, at the start of a request, catches the kill with a ping...
    assert control[0]["ok"], control
    # ...but within a request the dead connection is used, and fails.
    assert not control[1]["ok"], control
    assert control[1]["kind"] in ("ConnectionLost", "SessionTerminated"), control
    # Ours: replaced both times, every query succeeds on a new session.
    assert [after["ok"] for after in ours] == [True, True], ours
    assert all(after["pid"] != after["killed"] for after in ours), ours


def test_a_killed_session_is_replaced_on_postgresql(pg_app: App) -> None:
    check_a_killed_session_is_replaced(pg_app)


def test_a_killed_session_is_replaced_on_mariadb(mysql_app: App) -> None:
    check_a_killed_session_is_replaced(mysql_app)
