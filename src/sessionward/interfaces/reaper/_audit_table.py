"""The reaper's audit table (``--audit-dsn``): its records as rows, on PostgreSQL or MariaDB/MySQL.

The table is **append-only**, one row per record, as in the audit file: a
decision row is inserted and committed before the session is signalled, and
its outcome is a second row with the same ``id`` and ``type = 'outcome'``.
The primary key is ``(id, type)``.  Why not one row per decision, updated
with its outcome:

- the only write that must succeed before acting is an ``INSERT`` of new
  rows, and every insert is idempotent on the key (``ON CONFLICT DO NOTHING``;
  ``INSERT IGNORE``, which needs no ``UPDATE`` privilege, and whose values,
  fixed words, ids and ``TEXT``, cannot be truncated): a batch whose
  ``COMMIT`` was cut off (it may or may not have applied) is simply sent
  again, and a second outcome for one decision can never land, so a
  recovered ``unknown`` and a late real outcome cannot both stand;
- rows are never changed, so the table reads like the file, an audit trail is
  never rewritten, and the role needs only ``SELECT`` and ``INSERT`` once the
  table exists;
- crash recovery is an anti-join on the key: decisions without an outcome row.

Several reapers may share one table (one per reaped server, or a leader and
its standbys).  Each writes its instance id in ``reaper`` and holds a
liveness lock named after it on its audit connection (an advisory lock on
PostgreSQL, ``GET_LOCK`` on MariaDB/MySQL).  Recovery closes with
``unknown`` only the open decisions of reapers whose lock is free, that is of
reapers that are gone, never the in-flight decision of a live one.  (A
reaper that lost its audit connection holds no lock until it reconnects; a
reaper starting in that window closes its open decisions with ``unknown``,
and the real outcome, refused by the key, stays in the file and the log.)

Failure policy: when decision rows cannot be committed, ``write`` raises and
the reaper signals nothing (a decision whose ``COMMIT`` was cut off is later
closed with ``not signalled``).  Outcome and report rows that cannot be
written are kept (up to ``MAX_PENDING``) and sent again before the next
records; the reaper goes on, and reconnects at its next write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol

from ...core import (
    AuditUnavailable,
    ConfigurationError,
    SessionwardError,
    Target,
    parse_target,
    redact_url,
)
from ._audit import RECOVERED_DETAIL, UNKNOWN, OwnConnection, new_id, now_iso

DEFAULT_TABLE = "sessionward_audit"
#: Every audit statement, and the login, gives up after this long.
TIMEOUT_SECONDS = 5.0
#: After a failed connection, write nothing (and so end nothing) for this long.
RECONNECT_DELAY_SECONDS = 1.0
#: Outcome and report rows kept while the table cannot be written; the oldest go first.
MAX_PENDING = 10_000
#: The audit connections remembered as our own: the current one and those before it,
#: which the server may list for a moment after a reconnect.
MAX_OWN_CONNECTIONS = 8
NOT_SIGNALLED = "not signalled"
NOT_SIGNALLED_DETAIL = (
    "the audit table could not confirm this decision before acting, so the session was not "
    "signalled"
)
APPLICATION_NAME = "sessionward-audit"
_LOCK_PREFIX = "sessionward.audit."
_SUFFIX = ".sql"
#: One unquoted SQL identifier, as both servers take it (63 bytes is PostgreSQL's limit).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

Log = Callable[..., None]


def parse_table_name(text: str) -> tuple[str, ...]:
    """Check ``NAME`` or ``SCHEMA.NAME`` and split it.

    >>> parse_table_name("sessionward_audit")
    ('sessionward_audit',)
    >>> parse_table_name("ops.reaper_audit")
    ('ops', 'reaper_audit')
    >>> parse_table_name("audit; DROP TABLE x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: --audit-table 'audit; DROP TABLE x' is not ...
    """
    parts = tuple(text.split("."))
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigurationError(
            f"--audit-table {text!r} is not a table name "
            "(NAME or SCHEMA.NAME: letters, digits and _, not starting with a digit)"
        )
    return parts


@functools.cache
def load(name: str) -> str:
    """Read ``queries/<name>.sql`` from the installed package, once."""
    return (resources.files(__package__) / "queries" / f"{name}{_SUFFIX}").read_text(
        encoding="utf-8"
    )


def query_names() -> frozenset[str]:
    """Every query file shipped beside the reaper, without the ``.sql`` suffix."""
    folder = resources.files(__package__) / "queries"
    return frozenset(
        entry.name.removesuffix(_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX)
    )


#: The queries, by their name without the server suffix.
QUERIES = (
    "get_audit_table",
    "create_audit_table",
    "set_audit_session",
    "hold_instance_lock",
    "get_instance_lock_free",
    "insert_audit_record",
    "insert_closing_outcome",
    "list_open_decisions",
    "get_own_connection",
)


def query_file(query: str, kind: str) -> str:
    """The file of ``query`` for a server kind (``postgresql`` or ``mysql``).

    >>> query_file("insert_audit_record", "mysql")
    'insert_audit_record_mysql'
    """
    return f"{query}_{kind}"


class _Connection(Protocol):
    """One audit connection; every query is a name from ``QUERIES``."""

    def fetch(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]: ...

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run ``query`` once per row, all in one committed transaction."""

    def close(self) -> None: ...


class AuditTable:
    """Write audit records to a table; ``write`` returns once the decisions are committed.

    ``target`` (the reaped server's URL, without password) fills the ``target``
    column; ``log`` is called like ``EventLog.emit``.
    """

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE, target: str = "",
                 log: Log | None = None) -> None:  # fmt: skip
        self._target = parse_target(url)
        self._table = parse_table_name(table)
        if self._target.kind == "mysql" and len(self._table) == 1 and not self._target.database:
            raise ConfigurationError(
                f"--audit-dsn {self._target.redacted()} names no database: "
                "add /DATABASE to the URL or give --audit-table as DATABASE.TABLE"
            )
        self.reaper = new_id()
        # Masked again: the column outlives the run and is read by others.
        self._reaped = redact_url(target)
        self._log: Log = log or _quiet
        self._pending: list[dict[str, Any]] = []
        self._unsettled: list[str] = []
        self._retry_at = 0.0
        self._own: list[OwnConnection] = []
        self._conn: _Connection | None = self._open()

    @property
    def where(self) -> str:
        """The table and server, as it is safe to print."""
        return f"{'.'.join(self._table)} on {self._target.redacted()}"

    def own_connections(self) -> tuple[OwnConnection, ...]:
        """This table's connections, newest first: the reaper never ends them."""
        return tuple(reversed(self._own))

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Commit ``records`` (after any kept from earlier failures).

        Raise ``SessionwardError`` when decisions are among them and cannot be
        committed: the caller must not act on them.
        """
        decisions = [r["id"] for r in records if r.get("type") == "decision"]
        batch = [*self._pending, *(self._row(r) for r in records)]
        if not batch and not self._unsettled:
            return
        try:
            conn = self._connected()
            if batch:
                conn.run_many("insert_audit_record", batch)
            self._settle(conn)
        except SessionwardError as error:
            self._drop()
            if decisions:
                self._unsettled += decisions
                self._pending = [row for row in batch if row["type"] != "decision"]
                raise AuditUnavailable(
                    f"audit table {self.where} not written, so no session was signalled: {error}"
                ) from error
            self._keep(batch, error)
            return
        if self._pending:
            self._log("audit-resumed", f"audit table {self.where} written again",
                      records=len(self._pending))  # fmt: skip
        self._pending = []

    def recover(self) -> list[dict[str, Any]]:
        """Close with ``unknown`` the open decisions of reapers that are gone; return them."""
        try:
            conn = self._connected()
            gone: dict[str, bool] = {}
            closing = []
            for decision_id, reaper in conn.fetch("list_open_decisions"):
                if reaper == self.reaper:
                    continue
                if reaper not in gone:
                    rows = conn.fetch("get_instance_lock_free", {"name": _lock_name(reaper)})
                    gone[reaper] = bool(rows and rows[0][0])
                if gone[reaper]:
                    closing.append(decision_id)
            added = [
                {"type": "outcome", "id": i, "time": now_iso(), "outcome": UNKNOWN,
                 "detail": RECOVERED_DETAIL}
                for i in closing
            ]  # fmt: skip
            if added:
                conn.run_many("insert_closing_outcome", [self._row(r) for r in added])
        except SessionwardError as error:
            self._drop()
            raise SessionwardError(f"audit table {self.where}: {error}") from error
        return added

    def close(self) -> None:
        """Send what is kept, one last try, and disconnect."""
        if self._pending or self._unsettled:
            self._retry_at = 0.0
            self.write([])
            if self._pending:
                self._log("audit-error", f"audit table {self.where}: records not written "
                          "(the audit file, if any, has them)",
                          records=len(self._pending))  # fmt: skip
        self._drop()

    # ------------------------------------------------------------------ helpers

    def _open(self) -> _Connection:
        conn: _Connection
        if self._target.kind == "postgresql":
            conn = _PostgresConnection(self._target, self._table)
        else:
            conn = _MySQLConnection(self._target, self._table)
        try:
            schema, name = self._table if len(self._table) == 2 else (None, self._table[0])
            rows = conn.fetch("get_audit_table", {"schema": schema, "name": name})
            if not (rows and rows[0][0]):
                try:
                    conn.fetch("create_audit_table")
                except SessionwardError as error:
                    raise type(error)(
                        f"cannot create audit table {'.'.join(self._table)}: {error}"
                    ) from error
            conn.fetch("hold_instance_lock", {"name": _lock_name(self.reaper)})
            self._remember(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _remember(self, conn: _Connection) -> None:
        """Note how the server names ``conn``, so a reaper on that server leaves it alone."""
        rows = conn.fetch("get_own_connection")
        if not rows:
            raise SessionwardError("the audit connection cannot see its own session")
        pid, started, login = rows[0]
        user = login.rpartition("@")[0] if self._target.kind == "mysql" else login
        own = OwnConnection(
            pid=int(pid), started_at=started, user=user or None, application=APPLICATION_NAME
        )
        self._own = [*self._own, own][-MAX_OWN_CONNECTIONS:]

    def _connected(self) -> _Connection:
        if self._conn is None:
            if time.monotonic() < self._retry_at:
                raise SessionwardError("not reconnected yet")
            try:
                self._conn = self._open()
            except SessionwardError:
                self._retry_at = time.monotonic() + RECONNECT_DELAY_SECONDS
                raise
            self._log("audit-reconnected", f"audit table {self.where} reachable again")
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                conn.close()

    def _settle(self, conn: _Connection) -> None:
        """Close decisions whose commit was cut off: they were not acted on."""
        if not self._unsettled:
            return
        rows = [
            self._row({"type": "outcome", "id": i, "time": now_iso(), "outcome": NOT_SIGNALLED,
                       "detail": NOT_SIGNALLED_DETAIL})
            for i in self._unsettled
        ]  # fmt: skip
        conn.run_many("insert_closing_outcome", rows)
        self._unsettled = []

    def _keep(self, batch: list[dict[str, Any]], error: SessionwardError) -> None:
        dropped = max(0, len(batch) - MAX_PENDING)
        if dropped or not self._pending:
            # Said when records start waiting (or are lost), not at every retry.
            self._log("audit-error", f"audit table {self.where} not written, kept to send "
                      f"again: {error}", records=len(batch) - dropped,
                      dropped=dropped or None)  # fmt: skip
        self._pending = batch[dropped:]

    def _row(self, record: Mapping[str, Any]) -> dict[str, Any]:
        session: Mapping[str, Any] = record.get("session") or {}
        server = record.get("server")
        return {
            "id": record["id"],
            "type": record["type"],
            "time": _timestamp(record["time"], naive_utc=self._target.kind == "mysql"),
            "reaper": self.reaper,
            "target": self._reaped or None,
            "rule": record.get("rule"),
            "action": record.get("action"),
            "dry_run": record.get("dry_run"),
            "why": record.get("why"),
            "outcome": record.get("outcome"),
            "detail": record.get("detail"),
            "pid": session.get("pid"),
            "user": session.get("user"),
            "database": session.get("database"),
            "application": session.get("application"),
            "server": json.dumps(server, default=str) if server is not None else None,
            "session": json.dumps(session, default=str) if session else None,
        }


def _timestamp(text: str, *, naive_utc: bool) -> dt.datetime:
    """An audit time as the column takes it: aware, or naive UTC for ``DATETIME(6)``.

    >>> _timestamp("2026-01-02T03:04:05.000006+01:00", naive_utc=True)
    datetime.datetime(2026, 1, 2, 2, 4, 5, 6)
    """
    moment = dt.datetime.fromisoformat(text)
    if naive_utc:
        return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment


def _lock_name(reaper: str) -> str:
    """A reaper's liveness lock (under MariaDB/MySQL's 64-character limit)."""
    return _LOCK_PREFIX + reaper


def _quiet(*_: Any, **__: Any) -> None:
    """The log of an ``AuditTable`` nobody listens to."""


# ---------------------------------------------------------------------- the two servers


class _PostgresConnection:
    """An autocommit psycopg connection; every statement under ``TIMEOUT_SECONDS``."""

    def __init__(self, target: Target, table: tuple[str, ...]) -> None:
        from ...core import DriverNotInstalled

        try:
            import psycopg
            from psycopg import sql
        except ImportError:
            raise DriverNotInstalled(
                "the audit table on PostgreSQL needs psycopg 3: "
                "pip install 'sessionward[postgresql]'"
            ) from None
        from ...servers.postgresql._backend import libpq_url
        from ...servers.postgresql._errors import connect_error, reason

        self._target = target
        options: dict[str, Any] = {"application_name": APPLICATION_NAME}
        if not any(key == "connect_timeout" for key, _ in target.params):
            options["connect_timeout"] = round(TIMEOUT_SECONDS)
        try:
            self._conn = psycopg.connect(libpq_url(target), autocommit=True, **options)
        except psycopg.ProgrammingError as error:
            raise ConfigurationError(
                f"invalid PostgreSQL URL {target.redacted()}: {reason(error, target)}"
            ) from error
        except psycopg.Error as error:
            raise connect_error(error, target) from error
        identifier = sql.Identifier(*table)
        self._queries = {
            query: sql.SQL(load(query_file(query, "postgresql"))).format(table=identifier)
            for query in QUERIES
        }
        try:
            self.fetch("set_audit_session", {"statement_timeout": str(int(TIMEOUT_SECONDS * 1000))})
        except BaseException:
            self._conn.close()
            raise

    def fetch(self, query: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._errors():
            cursor = self._conn.execute(self._queries[query], params)
            return cursor.fetchall() if cursor.description is not None else []

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._errors(), self._conn.transaction():
            self._conn.cursor().executemany(self._queries[query], rows)

    def close(self) -> None:
        self._conn.close()

    def _errors(self) -> Any:
        from ...servers.postgresql._errors import mapped_errors

        return mapped_errors(
            self._target,
            statement_timeout_seconds=TIMEOUT_SECONDS,
            lock_timeout_seconds=TIMEOUT_SECONDS,
        )


class _MySQLConnection:
    """An autocommit PyMySQL connection whose socket gives up after ``TIMEOUT_SECONDS``."""

    def __init__(self, target: Target, table: tuple[str, ...]) -> None:
        from ...core import DriverNotInstalled

        try:
            import pymysql
        except ImportError:
            raise DriverNotInstalled(
                "an audit table on MariaDB/MySQL needs PyMySQL: pip install 'sessionward[mysql]'"
            ) from None
        from ...servers.mysql._backend import login_options, tls_files_error
        from ...servers.mysql._errors import connect_error, driver_errors
        from ...servers.mysql._queries import compose, quote_identifier

        self._target = target
        options = login_options(target)
        try:
            self._conn = pymysql.connect(
                autocommit=True,
                connect_timeout=TIMEOUT_SECONDS,
                read_timeout=TIMEOUT_SECONDS,
                write_timeout=TIMEOUT_SECONDS,
                program_name=APPLICATION_NAME,
                **options,
            )
        except driver_errors().Error as error:
            raise connect_error(error, target, connect_timeout_seconds=TIMEOUT_SECONDS) from error
        except OSError as error:
            raise tls_files_error(error, target) from error
        quoted = ".".join(quote_identifier(part) for part in table)
        self._queries = {
            query: compose(load(query_file(query, "mysql")), table=quoted) for query in QUERIES
        }
        try:
            self.fetch("set_audit_session", {"seconds": max(1, round(TIMEOUT_SECONDS))})
        except BaseException:
            self._conn.close()
            raise

    def fetch(self, query: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._errors(), self._conn.cursor() as cursor:
            cursor.execute(self._queries[query], params)
            return list(cursor.fetchall())

    def run_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._errors():
            self._conn.begin()
            try:
                with self._conn.cursor() as cursor:
                    cursor.executemany(self._queries[query], rows)
                self._conn.commit()
            except BaseException:
                # The connection may be gone: the error raised says so.
                with contextlib.suppress(Exception):
                    self._conn.rollback()
                raise

    def close(self) -> None:
        self._conn.close()

    def _errors(self) -> Any:
        from ...servers.mysql._errors import mapped_errors

        return mapped_errors(self._target, statement_limit_seconds=TIMEOUT_SECONDS)
