"""A Django program moving money with sessionward's engine, run by the tests in a child process.

``python -m tests.integrations.failover._django_child`` reads its settings as
JSON from ``SW_DJ_CONFIG`` (no other test sees them, as Django is configured
once per process):

- ``database``: the ``DATABASES["default"]`` entry (``HOST``, ``PORT``, ``NAME``,
  ``OPTIONS`` …); ``ENGINE`` defaults to sessionward's PostgreSQL engine and
  ``CONN_MAX_AGE`` to ``None`` (persistent connections, which a failover kills);
- ``driver``: ``psycopg`` or ``psycopg2`` (psycopg 3 hidden, so Django falls back);
- ``timeouts``: ``Timeouts`` fields, for ``OPTIONS["sessionward_timeouts"]``;
- ``transaction_timeouts``: the same, for ``OPTIONS["sessionward_transaction_timeouts"]``;
- ``threads``, ``seconds``: how many threads move money, for how long;
- ``accounts``: transfers go between accounts 1..accounts;
- ``prefix``: put before the table names ``sw_accounts`` and ``sw_transfers``;
- ``scenario``: ``transfers`` (the default), or ``connect``: connect once and write
  ``{"event": "connected"}`` or ``{"event": "refused", "kind": …, "message": …}``, or
  ``limits``: write what ``statement_timeout`` reads inside ``atomic()`` blocks and
  outside them, and the sessionward class of a ``pg_sleep`` that outlasts it.

Each thread runs one transfer per ``transaction.atomic()`` block, each under a
unique id, and moves on to the next after a failure (no rerun: that is the
application's business).  It writes ``{"event": "started", "at": …}`` at once and,
at the end, ``{"event": "done", "units": [...]}``: per transfer its id, when it
started and ended (``time.monotonic()``, the same clock as the test's), and
``ok``, or the failure with the sessionward class and whether the body had
finished (so the error came from the ``COMMIT``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import threading
import time
from typing import Any

#: Read in ``__main__`` only: pytest imports this module too (doctests), without it.
CONFIG: dict[str, Any] = {}
_write = threading.Lock()


def emit(event: str, **data: Any) -> None:
    with _write:
        sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()


def configure() -> None:
    if CONFIG.get("driver") == "psycopg2":
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    import django
    from django.conf import settings

    from sessionward import Timeouts

    database = {
        "ENGINE": "sessionward.django.db.backends.postgresql",
        "CONN_MAX_AGE": None,
        "USER": "postgres",
        **CONFIG["database"],
    }
    if "timeouts" in CONFIG:
        database["OPTIONS"] = {
            **database.get("OPTIONS", {}),
            "sessionward_timeouts": Timeouts(**CONFIG["timeouts"]),
        }
    if "transaction_timeouts" in CONFIG:
        database["OPTIONS"] = {
            **database.get("OPTIONS", {}),
            "sessionward_transaction_timeouts": Timeouts(**CONFIG["transaction_timeouts"]),
        }
    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=[],
        USE_TZ=True,
        SECRET_KEY="sessionward-tests-only",
        DEBUG=False,
    )
    django.setup()


def transfers() -> None:
    from django.db import connection, transaction

    from sessionward.errors import classify

    ids = itertools.count(1)
    units: list[list[Any]] = []
    deadline = time.monotonic() + float(CONFIG["seconds"])
    accounts = int(CONFIG["accounts"])
    prefix = CONFIG.get("prefix", "")
    update = f"UPDATE {prefix}sw_accounts SET balance = balance + %s WHERE id = %s"
    insert = f"INSERT INTO {prefix}sw_transfers (id, amount) VALUES (%s, %s)"

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < deadline:
                transfer_id = next(ids)
                source, target = rng.sample(range(1, accounts + 1), 2)
                amount = rng.randint(1, 50)
                started = time.monotonic()
                body_done = False
                try:
                    with transaction.atomic(), connection.cursor() as cursor:
                        for account, delta in sorted(((source, -amount), (target, amount))):
                            cursor.execute(update, (delta, account))
                        cursor.execute(insert, (transfer_id, amount))
                        body_done = True
                except Exception as error:
                    kind = classify(error)
                    units.append(
                        [
                            transfer_id, started, time.monotonic(), "error",
                            kind.__name__ if kind else type(error).__name__,
                            body_done, str(error).strip().splitlines()[0][:200],
                        ]
                    )  # fmt: skip
                    time.sleep(0.05)
                else:
                    units.append([transfer_id, started, time.monotonic(), "ok", None, True, ""])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(int(CONFIG["threads"]))]
    emit("started", at=time.monotonic())
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    emit("done", units=units)


def connect() -> None:
    from django.db import connection

    from sessionward.errors import classify

    try:
        connection.ensure_connection()
    except Exception as error:
        kind = classify(error)
        emit("refused", kind=kind.__name__ if kind else None, message=str(error).strip())
    else:
        emit("connected")
    finally:
        connection.close()


def limits() -> None:
    from django.db import connection, transaction

    from sessionward.errors import classify

    def show() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return str(cursor.fetchone()[0])

    inside = []
    for _ in range(3):
        with transaction.atomic():
            inside.append(show())
    outside = show()
    kind = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(5)")
    except Exception as error:
        found = classify(error)
        kind = found.__name__ if found else type(error).__name__
    after = show()
    connection.close()
    emit("limits", inside=inside, outside=outside, sleep=kind, after=after)


if __name__ == "__main__":
    CONFIG.update(json.loads(os.environ["SW_DJ_CONFIG"]))
    configure()
    scenarios = {"transfers": transfers, "connect": connect, "limits": limits}
    scenarios[CONFIG.get("scenario", "transfers")]()
