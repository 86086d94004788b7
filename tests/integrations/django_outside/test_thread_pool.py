"""The reported scenario: 50 tasks in a thread pool, one IntegrityError, one backend ended.

Task 3 opens a transaction by hand and fails in it with an IntegrityError;
after task 7 the backend of the thread that ran it is terminated from outside.
Plain Django hands both broken connections to later tasks; sessionward's
``ThreadPoolExecutor`` never does, and leaves no session after ``shutdown()``.
"""

from __future__ import annotations

import pytest

from tests.integrations.django_outside.conftest import App

TASKS = 50
FAILING_TASK = 3
PAUSED_TASK = 7


def run_pool(app: App, **env: str) -> tuple[dict[int, dict], int | None, set[int]]:
    """Results per task, the pid ended after task 7, and the app's sessions after shutdown."""
    child = app.start("pool", **env)
    paused = child.expect("paused")
    pid = paused["pid"]
    ended = None
    if pid in app.sessions():
        app.terminate(pid)
        ended = pid
    child.go()
    results = {int(i): r for i, r in child.expect("results")["results"].items()}
    after_shutdown = app.sessions()  # the child is still alive, waiting
    child.go()
    child.close()
    return results, ended, after_shutdown


def later_failures(results: dict[int, dict]) -> dict[int, dict]:
    return {i: r for i, r in results.items() if i != FAILING_TASK and not r["ok"]}


def assert_ours(app: App, *, keep: bool) -> None:
    # keep=True keeps connections only as long as CONN_MAX_AGE allows: no limit here.
    env = {"SW_OUT_KEEP": "1", "SW_OUT_PERSISTENT": "1"} if keep else {}
    results, ended, after = run_pool(app, SW_OUT_MODE="ours", **env)

    assert not results[FAILING_TASK]["ok"]
    assert results[FAILING_TASK]["type"] == "django.db.utils.IntegrityError"
    assert later_failures(results) == {}
    expected = [1000 + i for i in range(TASKS) if i != FAILING_TASK]
    assert app.rows(1000, 1000 + TASKS) == expected
    if keep:
        # The worker kept its connection between tasks, so there was one to end.
        assert ended is not None
    else:
        # The connection of task 7 did not outlive the task.
        assert ended is None
    assert after == set()


def assert_control_cascades(app: App) -> None:
    results, ended, after = run_pool(app, SW_OUT_MODE="plain")

    assert ended is not None
    failures = later_failures(results)
    messages = {r["message"] for r in failures.values()}
    kinds = {r["kind"] for r in failures.values()}
    missing = set(range(1000, 1000 + TASKS)) - set(app.rows(1000, 1000 + TASKS))
    if app.engine == "postgresql":
        # The terminated backend fails every later task of its thread ...
        assert kinds & {"SessionTerminated", "ConnectionLost"}, failures
        # ... and the transaction task 3 left open fails every later task of its thread.
        assert any("current transaction is aborted" in m for m in messages), messages
    else:
        # MariaDB: the killed connection fails later tasks; the transaction left
        # open by task 3 swallows every later insert of its thread.
        assert "ConnectionLost" in kinds, failures
        assert len(missing) > 1
    # Plain Django never closes the worker threads' connections.
    assert after != set()


@pytest.mark.parametrize("keep", [False, True], ids=["close", "keep"])
def test_pool_on_postgresql(pg_app: App, keep: bool) -> None:
    assert_ours(pg_app, keep=keep)


@pytest.mark.parametrize("keep", [False, True], ids=["close", "keep"])
def test_pool_on_mariadb(mysql_app: App, keep: bool) -> None:
    assert_ours(mysql_app, keep=keep)


def test_plain_django_cascades_on_postgresql(pg_app: App) -> None:
    assert_control_cascades(pg_app)


def test_plain_django_cascades_on_mariadb(mysql_app: App) -> None:
    assert_control_cascades(mysql_app)
