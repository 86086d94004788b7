"""A Django program outside requests, run by the tests in a child process.

``python -m tests.integrations.django_outside._app SCENARIO`` configures Django
from ``SW_OUT_*`` variables (no other test sees these settings), then runs the
scenario, writing JSON lines on stdout and waiting for a line on stdin
wherever the test acts from outside (terminates a backend, restarts the
server, counts sessions).

- ``SW_OUT_DRIVER``: ``psycopg``, ``psycopg2`` (psycopg 3 hidden, so Django
  falls back to it), ``pymysql`` (installed as ``MySQLdb``) or ``mysqlclient``
  (the real ``MySQLdb``)
- ``SW_OUT_ENGINE``: ``django``, ``sessionward`` (the ``ENGINE`` package) or
  ``refusing`` (a user's subclass of ours, in ``refusing_engine``)
- ``SW_OUT_HEALTH_CHECKS``: ``1`` for ``CONN_HEALTH_CHECKS``
- ``SW_OUT_MODE``: ``plain`` (Django alone, the control) or ``ours``
- ``SW_OUT_KEEP``: ``1`` for ``keep=True``
- ``SW_OUT_NAME``, ``SW_OUT_HOST``, ``SW_OUT_PORT``, ``SW_OUT_USER``, ``SW_OUT_PASSWORD``
- ``SW_OUT_PERSISTENT``: ``1`` for ``CONN_MAX_AGE=None``
- ``SW_OUT_TIMEOUTS``: ``1`` to set ``OPTIONS["sessionward_timeouts"]``
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import traceback
from typing import Any

DRIVER = os.environ.get("SW_OUT_DRIVER", "psycopg")
VENDOR = "mysql" if DRIVER in ("pymysql", "mysqlclient") else "postgresql"
OURS = os.environ.get("SW_OUT_MODE", "ours") == "ours"
KEEP = os.environ.get("SW_OUT_KEEP") == "1"
EXISTING_ID = 1
TASKS = 50
FAILING_TASK = 3
PAUSE_AFTER_TASK = 7
_write = threading.Lock()


def emit(event: str, **data: Any) -> None:
    with _write:
        sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()


def wait_go() -> None:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the test went away")


def configure() -> None:
    if DRIVER == "psycopg2":
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    elif DRIVER == "mysqlclient":
        import MySQLdb

        assert MySQLdb.__name__ == "MySQLdb"  # not PyMySQL installed under that name
    elif DRIVER == "pymysql":
        import pymysql

        pymysql.version_info = (2, 2, 1, "final", 0)  # Django asks for mysqlclient >= 2.2.1
        pymysql.install_as_MySQLdb()

    import django
    from django.conf import settings

    from sessionward import Timeouts

    engine = {
        "sessionward": f"sessionward.django.db.backends.{VENDOR}",
        "refusing": "tests.integrations.django_outside.refusing_engine",
    }.get(os.environ.get("SW_OUT_ENGINE", ""), f"django.db.backends.{VENDOR}")
    options: dict[str, Any] = {}
    if os.environ.get("SW_OUT_TIMEOUTS") == "1":
        options["sessionward_timeouts"] = Timeouts(statement_seconds=7, lock_seconds=3)
        if VENDOR == "mysql":
            options["sessionward_flavor"] = "mariadb"
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": engine,
                "NAME": os.environ["SW_OUT_NAME"],
                "HOST": os.environ.get("SW_OUT_HOST", ""),
                "PORT": os.environ.get("SW_OUT_PORT", ""),
                "USER": os.environ.get("SW_OUT_USER", ""),
                "PASSWORD": os.environ.get("SW_OUT_PASSWORD", ""),
                "CONN_MAX_AGE": (
                    None
                    if os.environ.get("SW_OUT_PERSISTENT") == "1"
                    else float(os.environ.get("SW_OUT_MAX_AGE", "0"))
                ),
                "OPTIONS": options,
                "CONN_HEALTH_CHECKS": os.environ.get("SW_OUT_HEALTH_CHECKS") == "1",
            }
        },
        INSTALLED_APPS=[],
        USE_TZ=True,
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="sessionward-tests-only",
        DEBUG=False,
    )
    django.setup()


def sql(statement: str, params: Any = None) -> list[Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def backend_pid() -> int | None:
    """The server pid of this thread's connection, read from the driver (no statement)."""
    from django.db import connection

    try:
        connection.ensure_connection()
        raw = connection.connection
        if DRIVER == "psycopg":
            return int(raw.info.backend_pid)
        if DRIVER == "psycopg2":
            return int(raw.get_backend_pid())
        return int(raw.thread_id())
    except Exception:
        return None


def server_pid() -> int:
    """The server pid of this thread's connection, asked with a statement (a cursor)."""
    row = sql("SELECT CONNECTION_ID()" if VENDOR == "mysql" else "SELECT pg_backend_pid()")
    return int(row[0][0])


def failure(error: BaseException) -> dict[str, Any]:
    from sessionward.errors import classify

    kind = classify(error)
    return {
        "type": f"{type(error).__module__}.{type(error).__name__}",
        "message": str(error).strip().splitlines()[0] if str(error).strip() else "",
        "kind": kind.__name__ if kind else None,
    }


# --------------------------------------------------------------------------- scenarios


def task(i: int) -> dict[str, Any]:
    from django.db import transaction

    pid = backend_pid()
    thread = threading.current_thread().name
    if i == FAILING_TASK:
        # Opens a transaction by hand and fails in it, as careless code does.
        transaction.set_autocommit(False)
        sql("INSERT INTO sw_notes (id, text) VALUES (%s, %s)", [EXISTING_ID, "duplicate"])
    sql("INSERT INTO sw_notes (id, text) VALUES (%s, %s)", [1000 + i, f"task {i}"])
    return {"pid": pid, "thread": thread}


def pool() -> None:
    import concurrent.futures

    from sessionward.django import ThreadPoolExecutor

    executor: concurrent.futures.ThreadPoolExecutor = (
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="sw-pool", keep=KEEP)
        if OURS
        else concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sw-pool")
    )
    results: dict[int, dict[str, Any]] = {}
    started: dict[int, dict[str, Any]] = {}

    def recorded(i: int) -> dict[str, Any]:
        started[i] = {"pid": backend_pid(), "thread": threading.current_thread().name}
        return task(i)

    def collect(futures: dict[int, Any]) -> None:
        for i, future in futures.items():
            try:
                results[i] = {"ok": True, **future.result()}
            except Exception as error:
                results[i] = {"ok": False, **started.get(i, {}), **failure(error)}

    first = {i: executor.submit(recorded, i) for i in range(PAUSE_AFTER_TASK + 1)}
    collect(first)
    emit("paused", task=PAUSE_AFTER_TASK, **started[PAUSE_AFTER_TASK])
    wait_go()
    rest = {i: executor.submit(recorded, i) for i in range(PAUSE_AFTER_TASK + 1, TASKS)}
    collect(rest)
    executor.shutdown(wait=True)
    emit("results", results={str(i): results[i] for i in sorted(results)})
    wait_go()


def script() -> None:
    from contextlib import nullcontext

    from sessionward.django import fresh_connections

    for step in range(10):
        with fresh_connections() if OURS else nullcontext():
            sql("INSERT INTO sw_notes (id, text) VALUES (%s, %s)", [2000 + step, f"step {step}"])
        emit("step", step=step)
        wait_go()
    emit("done")


def age() -> None:
    """keep=True keeps a connection until CONN_MAX_AGE (1 s here), then replaces it."""
    import time

    from sessionward.django import fresh_connections

    pids = []
    for pause in (0.0, 0.0, 1.2):
        time.sleep(pause)
        with fresh_connections(keep=True):
            pids.append(backend_pid())
    emit("pids", pids=pids)


def retry() -> None:
    from sessionward.django import fresh_connections

    attempts = 0

    @fresh_connections(retry=3)
    def unit() -> None:
        nonlocal attempts
        attempts += 1
        sql("INSERT INTO sw_notes (id, text) VALUES (%s, %s)", [3000, "retried"])
        if attempts == 1:
            emit("inserted", pid=backend_pid())
            wait_go()
        sql("SELECT 1")

    try:
        unit()
    except Exception as error:
        emit("done", ok=False, attempts=attempts, **failure(error))
    else:
        emit("done", ok=True, attempts=attempts)


def commit() -> None:
    from sessionward.django import fresh_connections
    from sessionward.errors import CommitOutcomeUnknown, classify

    attempts = 0

    @fresh_connections(retry=3)
    def unit() -> None:
        nonlocal attempts
        attempts += 1
        sql("INSERT INTO sw_slow (id) VALUES (%s)", [attempts])
        emit("inserted", pid=backend_pid())

    try:
        unit()
    except CommitOutcomeUnknown as error:
        cause = classify(error.__cause__) if error.__cause__ else None
        emit("done", outcome="unknown", attempts=attempts, cause=cause and cause.__name__,
             message=str(error))  # fmt: skip
    except Exception as error:
        emit("done", outcome="other", attempts=attempts, **failure(error))
    else:
        emit("done", outcome="committed", attempts=attempts)


def view(request: Any) -> Any:
    from django.http import JsonResponse

    if VENDOR == "postgresql":
        row = sql(
            "SELECT pg_backend_pid(), current_setting('application_name'), "
            "current_setting('statement_timeout')"
        )[0]
    else:
        row = sql("SELECT CONNECTION_ID(), '', @@max_statement_time")[0]
    return JsonResponse({"pid": row[0], "application_name": row[1], "statement": str(row[2])})


urlpatterns: list[Any] = []


def requests() -> None:
    from django.core.management import call_command
    from django.test import Client
    from django.urls import path

    urlpatterns.append(path("pid", view))
    out = io.StringIO()
    call_command("check", stdout=out)
    emit("checked", output=out.getvalue())
    client = Client()
    for number in (1, 2, 3):
        try:
            response = client.get("/pid")
            emit("response", number=number, status=response.status_code, **response.json())
        except Exception as error:
            emit("response", number=number, status=None, **failure(error))
        wait_go()


def pool_edges() -> None:
    """An initializer that queries, keep=True, and shutdown(cancel_futures=True) mid-run."""
    from sessionward.django import ThreadPoolExecutor

    release = threading.Event()
    busy = threading.Semaphore(0)

    def blocker() -> None:
        sql("SELECT 1")
        busy.release()
        release.wait(10)

    executor = ThreadPoolExecutor(max_workers=3, initializer=sql, initargs=("SELECT 1",), keep=True)
    futures = [executor.submit(sql, "SELECT 1") for _ in range(3)]
    for future in futures:
        future.result()
    emit("warm")
    wait_go()
    # Every worker busy, 30 tasks queued behind them: those are what gets cancelled.
    futures = [executor.submit(blocker) for _ in range(3)]
    futures += [executor.submit(sql, "SELECT 1") for _ in range(30)]
    for _ in range(3):
        busy.acquire(timeout=10)
    threading.Timer(0.3, release.set).start()
    executor.shutdown(wait=True, cancel_futures=True)
    emit("shut", cancelled=sum(f.cancelled() for f in futures))
    wait_go()


def health() -> None:
    """Django's health check decides through ``is_usable()``: a subclass saying no is obeyed.

    ``close_old_connections()`` is what Django runs when a request starts.
    """
    from unittest import mock

    from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
    from django.db.backends.base.base import BaseDatabaseWrapper

    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper, not django.db's proxy

    # Django's own check for this vendor: the round trip our is_usable() saves.
    django_class = next(
        cls for cls in type(connection).__mro__
        if cls.__module__.startswith("django.db.backends.") and "is_usable" in vars(cls)
    )  # fmt: skip
    assert django_class is not BaseDatabaseWrapper
    with mock.patch.object(
        django_class, "is_usable", autospec=True, side_effect=django_class.is_usable
    ) as round_trips:
        first = server_pid()
        close_old_connections()
        kept = server_pid()
        quiet_round_trips = round_trips.call_count
        close_old_connections()
        connection.refuse = True  # the subclass's is_usable() says no from now on
        replaced = server_pid()
        # Django checks once per request: the rest of it goes on with the new one.
        still = server_pid()
        connection.refuse = False
    emit(
        "health", first=first, kept=kept, replaced=replaced, still=still,
        refusals=connection.refusals, quiet_round_trips=quiet_round_trips,
        repr=repr(connection),
    )  # fmt: skip
    wait_go()


def killed() -> None:
    """A session killed from outside: replaced at the next request, and within one."""
    from django.db import close_old_connections

    server_pid()
    for step in ("request", "cursor"):
        emit("idle", step=step, pid=backend_pid())
        wait_go()
        if step == "request":
            close_old_connections()
        try:
            pid = server_pid()
        except Exception as error:
            emit("after", step=step, ok=False, **failure(error))
            return
        emit("after", step=step, ok=True, pid=pid)
    wait_go()


SCENARIOS = {
    "health": health,
    "killed": killed,
    "pool_edges": pool_edges,
    "pool": pool,
    "script": script,
    "retry": retry,
    "age": age,
    "commit": commit,
    "requests": requests,
}

if __name__ == "__main__":
    try:
        configure()
        SCENARIOS[sys.argv[1]]()
    except BaseException:
        emit("crashed", traceback=traceback.format_exc())
        raise
