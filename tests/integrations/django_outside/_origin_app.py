"""Django sessions naming their origin, run by ``test_origin.py`` in a child process.

``python -m tests.integrations.django_outside._origin_app SCENARIO``, configured
like ``_app`` from ``SW_OUT_*`` variables, plus ``SW_OUT_OPTIONS``: JSON merged
into the database's ``OPTIONS`` before the first connection.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback

from tests.integrations.django_outside._app import VENDOR, configure, emit, wait_go


def _options() -> None:
    from django.conf import settings

    extra = json.loads(os.environ.get("SW_OUT_OPTIONS", "{}"))
    settings.DATABASES["default"]["OPTIONS"].update(extra)


def idle() -> None:
    """A transaction left idle after a statement from a known line."""
    from django.db import connection, transaction

    query = "SELECT pg_backend_pid()" if VENDOR == "postgresql" else "SELECT CONNECTION_ID()"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT %s", ["a%b"])  # parameters: the driver reads %%
        assert cursor.fetchone()[0] == "a%b"
        cursor.execute(query)  # no parameters: the driver reads no %
        line = sys._getframe().f_lineno - 1
        (pid,) = cursor.fetchone()
        emit("idle", pid=pid, line=line, thread=threading.current_thread().name)
        wait_go()


def running() -> None:
    """A statement running for two seconds in a thread of a known name."""
    from django.db import connection

    def work() -> None:
        with connection.cursor() as cursor:
            line = sys._getframe().f_lineno + 2
            emit("running", line=line)
            cursor.execute("SELECT SLEEP(2)" if VENDOR == "mysql" else "SELECT pg_sleep(2)")
            cursor.executemany("SELECT %s", [("a%",), ("b",)])  # untagged on MariaDB
        connection.close()
        emit("done")

    thread = threading.Thread(target=work, name="sw-worker")
    thread.start()
    thread.join()


def queries() -> None:
    """What Django reports of a statement: its wrappers, ``connection.queries``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sessionward.integrations._origin import _Tagging

    query = "SELECT pg_backend_pid()" if VENDOR == "postgresql" else "SELECT CONNECTION_ID()"
    wrapped: list[str] = []

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        wrapped.append(sql)
        return execute(sql, params, many, context)

    with (
        CaptureQueriesContext(connection) as captured,
        connection.execute_wrapper(wrapper),
        connection.cursor() as cursor,
    ):
        cursor.execute(query)
        (pid,) = cursor.fetchone()
    raw = connection.connection
    factory = getattr(raw, "cursor_factory", None) or getattr(raw, "cursorclass", None)
    emit(
        "queries",
        pid=pid,
        wrapped=wrapped,
        captured=[q["sql"] for q in captured.captured_queries],
        ours=isinstance(factory, type) and issubclass(factory, _Tagging),
        # Django's MySQL engine wraps the driver's cursor once more.
        tagged=isinstance(getattr(cursor.cursor, "cursor", cursor.cursor), _Tagging),
    )


SCENARIOS = {"idle": idle, "running": running, "queries": queries}

if __name__ == "__main__":
    try:
        configure()
        _options()
        SCENARIOS[sys.argv[1]]()
    except BaseException:
        emit("crashed", traceback=traceback.format_exc())
        raise
