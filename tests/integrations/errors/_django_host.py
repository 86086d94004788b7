"""Run Django database connections in a child process, driven over stdin/stdout.

``python -m tests.integrations.errors._django_host DRIVER`` configures Django
(nothing else in the test run sees it), then serves JSON lines::

    {"id": 1, "op": "open", "session": "s1", "settings": {...DATABASES entry...}}
    {"id": 2, "op": "execute", "session": "s1", "sql": "SELECT 1"}
    {"id": 3, "op": "close", "session": "s1"}

Each session is a ``DatabaseWrapper`` living in its own thread, as Django
expects; statements run through Django's cursor, so errors arrive wrapped by
Django (``django.db.utils.OperationalError`` …), and the reply carries what
``classify`` and ``translate`` made of them.  DRIVER is ``psycopg``,
``psycopg2`` (psycopg 3 is hidden so Django falls back to it), ``pymysql``
(installed as ``MySQLdb``) or ``mysqlclient`` (the real ``MySQLdb``).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from typing import Any


def main(driver: str) -> None:
    if driver == "psycopg2":
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    elif driver == "pymysql":
        import pymysql

        pymysql.install_as_MySQLdb()

    import django
    from django.conf import settings

    settings.configure(DATABASES={}, INSTALLED_APPS=[], USE_TZ=True)
    django.setup()

    from tests.integrations.errors._outcomes import outcome_of

    write_lock = threading.Lock()
    sessions: dict[str, queue.Queue[dict[str, Any] | None]] = {}

    def reply(message: dict[str, Any]) -> None:
        with write_lock:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def serve(requests: queue.Queue[dict[str, Any] | None]) -> None:
        wrapper: Any = None
        while (request := requests.get()) is not None:
            op = request["op"]
            try:
                if op == "open":
                    wrapper = _wrapper(request["settings"], request["session"])
                    reply({"id": request["id"], "ok": True})
                elif op == "execute":

                    def run(sql: str = request["sql"], db: Any = wrapper) -> list[list[Any]]:
                        cursor = db.cursor()
                        try:
                            cursor.execute(sql)
                            rows = cursor.fetchall() if cursor.description else []
                        finally:
                            cursor.close()
                        return [[_plain(value) for value in row] for row in rows]

                    reply({"id": request["id"], **outcome_of(run).to_json()})
                elif op == "client":
                    from tests.integrations.errors._client import client_settings

                    wrapper.ensure_connection()
                    reply({"id": request["id"], "client": client_settings(wrapper.connection)})
                elif op == "close":
                    if wrapper is not None:
                        wrapper.close()
                    reply({"id": request["id"], "ok": True})
                    return
            except Exception as error:  # a broken harness must say so, not hang
                reply({"id": request["id"], "harness_error": f"{type(error).__name__}: {error}"})

    for line in sys.stdin:
        request = json.loads(line)
        name = request["session"]
        if request["op"] == "open":
            sessions[name] = queue.Queue()
            threading.Thread(target=serve, args=(sessions[name],), daemon=True).start()
        sessions[name].put(request)
        if request["op"] == "close":
            sessions[name].put(None)


def _wrapper(entry: dict[str, Any], alias: str) -> Any:
    from django.db import connections
    from django.db.utils import load_backend

    # Fills in every key Django expects; "default" is the only alias it accepts alone.
    settings_dict = connections.configure_settings({"default": entry})["default"]
    backend = load_backend(settings_dict["ENGINE"])
    return backend.DatabaseWrapper(settings_dict, alias)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


if __name__ == "__main__":
    main(sys.argv[1])
