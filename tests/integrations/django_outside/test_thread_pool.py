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


def run_pool(app: App, *, held: bool, **env: str) -> tuple[dict[int, dict], set[int]]:
    """Results per task and the app's sessions after shutdown.

    ``held``: the worker that ran task 7 still holds its connection, which is
    then terminated from outside; else that connection must be gone already.
    """
    child = app.start("pool", **env)
    pid = child.expect("paused")["pid"]
    if held:
        assert pid in app.sessions()
        app.terminate(pid)
    else:
        # The connection of task 7 did not outlive the task.
        app.wait_until(f"{pid} is gone", lambda: pid not in app.sessions(), timeout=5)
    child.go()
    results = {int(i): r for i, r in child.expect("results")["results"].items()}
    # The child is still alive, waiting; plain Django's sessions stay, ours go.
    ours = env.get("SW_OUT_MODE") == "ours"
    after_shutdown = app.sessions_once_gone() if ours else app.sessions()
    child.go()
    child.close()
    return results, after_shutdown


def later_failures(results: dict[int, dict]) -> dict[int, dict]:
    return {i: r for i, r in results.items() if i != FAILING_TASK and not r["ok"]}


def assert_ours(app: App, *, keep: bool) -> None:
    # keep=True keeps connections only as long as CONN_MAX_AGE allows: no limit here.
    # The worker then holds its connection between tasks, so there is one to end.
    env = {"SW_OUT_KEEP": "1", "SW_OUT_PERSISTENT": "1"} if keep else {}
    results, after = run_pool(app, held=keep, SW_OUT_MODE="ours", **env)

    assert not results[FAILING_TASK]["ok"]
    assert results[FAILING_TASK]["type"] == "django.db.utils.IntegrityError"
    assert later_failures(results) == {}
    expected = [1000 + i for i in range(TASKS) if i != FAILING_TASK]
    assert app.rows(1000, 1000 + TASKS) == expected
    assert after == set()


def assert_control_cascades(app: App) -> None:
    results, after = run_pool(app, held=True, SW_OUT_MODE="plain")

    failures = later_failures(results)
    kinds = {r["kind"] for r in failures.values()}
    missing = set(range(1000, 1000 + TASKS)) - set(app.rows(1000, 1000 + TASKS))
    if app.engine == "postgresql":
        # The terminated backend fails every later task of its thread, and so does
        # the transaction task 3 left open (when task 7 ran elsewhere).
        assert failures, "no later task failed"
        for failure in failures.values():
            aborted = "current transaction is aborted" in failure["message"]
            ended = failure["kind"] in ("SessionTerminated", "ConnectionLost")
            assert aborted or ended, failure
        assert kinds & {"SessionTerminated", "ConnectionLost"}, failures
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


def check_edges(app: App) -> None:
    child = app.start("pool_edges", SW_OUT_PERSISTENT="1")
    child.expect("warm")
    # keep=True: the workers hold their connections between tasks.
    assert len(app.sessions()) >= 1
    child.go()
    shut = child.expect("shut")
    assert shut["cancelled"] > 0
    # Each worker closed its own connection at shutdown, cancelled tasks or not.
    assert app.sessions_once_gone() == set()
    child.go()
    child.close()


def test_keep_and_cancel_futures_leave_no_session_on_postgresql(pg_app: App) -> None:
    check_edges(pg_app)


def test_keep_and_cancel_futures_leave_no_session_on_mariadb(mysql_app: App) -> None:
    check_edges(mysql_app)
