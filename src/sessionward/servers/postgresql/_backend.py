"""The PostgreSQL adapter: one psycopg 3 connection behind the ``Backend`` protocol."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from ...core import (
    BACKGROUND,
    CLIENT,
    PLATFORM,
    REPLICATION,
    ConfigurationError,
    DriverNotInstalled,
    PermissionDenied,
    ServerInfo,
    Session,
    SessionwardError,
    Snapshot,
    Target,
    checked_platform,
    parse_origin,
    platform_of_login,
)
from ._errors import connect_error, mapped_errors, reason
from ._queries import Queries, queries_for

if TYPE_CHECKING:
    import psycopg

Row = tuple[Any, ...]

logger = logging.getLogger("sessionward.servers.postgresql")

APPLICATION_NAME = "sessionward"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5
#: Sleep between exit checks where the server cannot wait itself (PostgreSQL 13).
EXIT_POLL_SECONDS = 0.02
#: What ``pg_stat_activity.query`` says of a session the role may not inspect.
HIDDEN_QUERY = "<insufficient privilege>"
HIDDEN_NOTE = (
    "other roles' sessions show no query, state, times or client: "
    "grant this role pg_read_all_stats to see them"
)
_DRIVER_HINT = "the PostgreSQL adapter needs psycopg 3: pip install 'sessionward[postgresql]'"
#: Databases PostgreSQL itself needs: CREATE DATABASE copies template1, and
#: template0 is the pristine copy to rebuild it from.  Clearing their template
#: flag before dropping (as for any database) would defeat the server's guard.
SYSTEM_DATABASES = frozenset({"template0", "template1"})
#: Statement limit for DROP DATABASE, above the catalog-read one: removing a
#: large database's files takes a while, and WITH (FORCE) waits up to 5 s for
#: the sessions it ends.
DROP_TIMEOUT_SECONDS = 60.0


class PostgresBackend:
    """Read and end the sessions of a PostgreSQL 13+ server.

    Create it with ``connect``; it owns one autocommit connection whose every
    statement runs under the statement timeout given there.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Row],
        *,
        target: Target,
        server: ServerInfo,
        queries: Queries,
        statement_timeout_seconds: float,
        lock_timeout_seconds: float,
    ) -> None:
        self._conn = conn
        self._target = target
        self._server = server
        self._queries = queries
        self._statement_timeout_seconds = statement_timeout_seconds
        self._lock_timeout_seconds = lock_timeout_seconds
        self._told_hidden = False
        #: Database names found short enough to reach the server whole.
        self._names_in_limit: set[str] = set()
        #: Statements sent on this connection since ``connect`` handed it over.
        self._statements = 0

    @classmethod
    def connect(
        cls, target: Target, *, statement_timeout_seconds: float, platform: str = "auto"
    ) -> PostgresBackend:
        """Log in to ``target`` and bound every later statement by the timeout.

        Raise ``ConnectionFailed`` or ``AuthenticationFailed`` when the login
        fails, ``ConfigurationError`` for a server older than 13, and
        ``DriverNotInstalled`` without psycopg.  ``platform`` is checked but
        changes nothing: on every managed PostgreSQL, ``pg_signal_backend``
        membership is how a non-superuser ends sessions.
        """
        checked_platform(platform)
        if not statement_timeout_seconds >= 0:
            raise ConfigurationError(
                f"statement timeout must be zero (off) or positive, not {statement_timeout_seconds}"
            )
        try:
            import psycopg
        except ImportError:
            raise DriverNotInstalled(_DRIVER_HINT) from None

        options: dict[str, Any] = {"application_name": APPLICATION_NAME}
        if not any(key == "connect_timeout" for key, _ in target.params):
            options["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_SECONDS
        try:
            conn = psycopg.connect(libpq_url(target), autocommit=True, **options)
        except psycopg.ProgrammingError as error:
            # libpq rejected the URL itself, before any network traffic.
            raise ConfigurationError(
                f"invalid PostgreSQL URL {target.redacted()}: {reason(error, target)}"
            ) from error
        except psycopg.Error as error:
            raise connect_error(error, target) from error
        # pg_*_backend answer "not a backend" with a WARNING we report as False.
        conn.add_notice_handler(_ignore_notice)
        try:
            return cls._start(conn, target, statement_timeout_seconds)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _start(
        cls, conn: psycopg.Connection[Row], target: Target, statement_timeout_seconds: float
    ) -> PostgresBackend:
        queries = queries_for(conn.info.server_version)
        statement_ms = _milliseconds(statement_timeout_seconds)
        # Catalog reads take only share locks; give up on them well before the
        # statement timeout so the error says what happened.
        lock_ms = max(1, statement_ms // 2) if statement_ms else 0
        with mapped_errors(
            target,
            statement_timeout_seconds=statement_timeout_seconds,
            lock_timeout_seconds=lock_ms / 1000,
        ):
            conn.execute(
                queries.set_timeouts,
                {"statement_timeout": str(statement_ms), "lock_timeout": str(lock_ms)},
            )
            row = conn.execute(queries.get_server).fetchone()
        assert row is not None
        version, version_num, own_pid = row
        server = ServerInfo(
            engine="postgresql", version=version, version_num=version_num, own_pid=own_pid
        )
        return cls(
            conn,
            target=target,
            server=server,
            queries=queries,
            statement_timeout_seconds=statement_timeout_seconds,
            lock_timeout_seconds=lock_ms / 1000,
        )

    @property
    def server(self) -> ServerInfo:
        return self._server

    @property
    def statements_sent(self) -> int:
        """How many statements this connection has sent the server (``top`` shows a
        refresh's share)."""
        return self._statements

    def snapshot(
        self, pids: Collection[int] | None = None, *, transactions_only: bool = False
    ) -> Snapshot:
        """Read every session but ours (or only ``pids``, or only those in a transaction),
        background processes included, in one query."""
        wanted = None if pids is None else sorted(set(pids))
        rows = self._fetch(
            self._queries.list_sessions, {"pids": wanted, "transactions_only": transactions_only}
        )
        # One clock row (pid NULL) carries the time, so no session row parses it.
        taken_at: dt.datetime = next(row[0] for row in rows if row[1] is None)
        sessions = tuple(_session(row) for row in rows if row[1] is not None)
        degraded: tuple[str, ...] = ()
        if any(row[19] == HIDDEN_QUERY for row in rows):
            degraded = (HIDDEN_NOTE,)
            if not self._told_hidden:
                self._told_hidden = True
                logger.info("%s: %s", self._target.redacted(), HIDDEN_NOTE)
        return Snapshot(
            server=self._server,
            taken_at=taken_at,
            sessions=sessions,
            degraded=degraded,
            partial=pids is not None or transactions_only,
            undetailed=HIDDEN_NOTE if degraded else "",
        )

    def cancel(self, pid: int, *, started_at: str | None = None) -> bool:
        """Send ``pid`` a cancel request; False when that session is gone."""
        return self._signal(self._queries.cancel_backend, pid, started_at, "cancel")

    def terminate(self, pid: int, *, started_at: str | None = None) -> bool:
        """Send ``pid`` a terminate request; False when that session is gone."""
        return self._signal(self._queries.terminate_backend, pid, started_at, "terminate")

    def terminate_many(self, targets: Sequence[tuple[int, str | None]]) -> set[int]:
        """Send each (pid, started_at) a terminate request in one statement; return those sent.

        Raise ``PermissionDenied`` when the role may not signal one of them;
        those before it in the statement may have been signalled already, so
        the caller signals each again, one by one (a second SIGTERM is harmless).
        """
        if not targets:
            return set()
        rows = self._fetch(
            self._queries.terminate_backends,
            {"pids": [pid for pid, _ in targets], "started_ats": [s for _, s in targets]},
            denied=lambda: f"not permitted to terminate one of pids {[p for p, _ in targets]}",
        )
        return {row[0] for row in rows}

    def foresee_refusals(self, action: str, sessions: Sequence[Session]) -> dict[int, str]:
        """The sessions this role may not signal (the server's own rule), each with why."""
        if not sessions:
            return {}
        rows = self._fetch(
            self._queries.list_signal_refusals, {"pids": sorted({s.pid for s in sessions})}
        )
        return {row[0]: self._refusal(action, row[0]) for row in rows}

    def try_leader_lock(self, name: str) -> bool:
        """Take advisory lock ``name`` without waiting; held until this connection ends.

        Call it only until it succeeds: each success stacks another hold.
        """
        rows = self._fetch(self._queries.try_advisory_lock, {"name": name})
        return bool(rows and rows[0][0])

    def probe(self, pids: Collection[int]) -> dict[int, str | None]:
        """Map each pid still present to the start time of its running statement."""
        wanted = sorted(set(pids))
        if not wanted:
            return {}
        rows = self._fetch(self._queries.probe_sessions, {"pids": wanted})
        return {row[0]: row[1] for row in rows}

    def wait_for_exit(
        self, pid: int, *, timeout_seconds: float, started_at: str | None = None
    ) -> None:
        """Wait on the server for ``pid`` to exit (14+), or sleep a poll interval (13)."""
        if timeout_seconds <= 0:
            return
        if self._queries.wait_backend is None:
            time.sleep(min(timeout_seconds, EXIT_POLL_SECONDS))
            return
        timeout_ms = _milliseconds(timeout_seconds)
        statement_ms = _milliseconds(self._statement_timeout_seconds)
        if statement_ms:
            # The server-side wait is a statement too: end it well before the
            # statement timeout would turn it into an error.
            timeout_ms = min(timeout_ms, max(1, statement_ms // 2))
        try:
            # False with a WARNING when it did not exit in time or is gone: both fine.
            self._fetch(
                self._queries.wait_backend,
                {"pid": pid, "timeout_ms": timeout_ms, "started_at": started_at},
            )
        except PermissionDenied:
            time.sleep(min(timeout_seconds, EXIT_POLL_SECONDS))

    def database_exists(self, name: str) -> bool:
        """Whether database ``name`` exists; refuse ours, the template databases, and one
        this role may not drop (``PermissionDenied``, before any session is ended)."""
        if name in SYSTEM_DATABASES:
            raise ConfigurationError(
                f"refusing to drop {name}: PostgreSQL needs it (CREATE DATABASE copies template1, "
                "template0 is the pristine copy of it)"
            )
        self._check_name_length(name)
        rows = self._fetch(self._queries.get_database, {"name": name})
        if rows and rows[0][0]:
            other = "template1" if name == "postgres" else "postgres"
            raise ConfigurationError(
                f"cannot drop database {name!r}: sessionward is connected to it; "
                f"connect to another database, such as {other}"
            )
        if rows and not rows[0][4]:
            raise PermissionDenied(_not_owner(name, rows[0][3]))
        return bool(rows)

    def block_connections(self, name: str) -> Callable[[], None]:
        """Turn ``ALLOW_CONNECTIONS`` off and clear the template flag; return the undo."""
        self._check_name_length(name)
        rows = self._fetch(self._queries.get_database, {"name": name})
        if not rows:
            raise ConfigurationError(f"database {name!r} does not exist")
        _current, allow_connections, is_template, role, _may_drop = rows[0]
        denied = _not_owner(name, role)
        self._alter_database(name, allow_connections=False, is_template=False, denied=denied)

        def restore() -> None:
            self._alter_database(
                name, allow_connections=allow_connections, is_template=is_template, denied=denied
            )

        return restore

    def database_users(self, name: str) -> tuple[frozenset[int], tuple[str, ...]]:
        """Every backend connected to ``name`` but ours; the server shows them all."""
        self._check_name_length(name)
        rows = self._fetch(self._queries.list_database_sessions, {"name": name})
        return frozenset(row[0] for row in rows), ()

    def drop_database(self, name: str, *, force: bool, if_exists: bool) -> None:
        """``DROP DATABASE``, ``WITH (FORCE)`` when asked, under a longer statement limit."""
        from psycopg import sql

        self._check_name_length(name)
        text = self._queries.drop_database_force if force else self._queries.drop_database
        statement = sql.SQL(text).format(
            name=sql.Identifier(name), if_exists=sql.SQL("IF EXISTS " if if_exists else "")
        )
        statement_ms = _milliseconds(self._statement_timeout_seconds)
        lock_ms = _milliseconds(self._lock_timeout_seconds)
        drop_ms = max(statement_ms, _milliseconds(DROP_TIMEOUT_SECONDS)) if statement_ms else 0
        self._set_timeouts(drop_ms, lock_ms)
        try:
            self._run(
                statement,
                timeout_seconds=drop_ms / 1000,
                denied=lambda: (
                    f"not permitted to drop database {name!r}: it takes its owner or a "
                    "superuser, and the privilege to end the sessions still on it"
                ),
            )
        except BaseException:
            # Keep the error that matters; a lost connection fails the reset too.
            with contextlib.suppress(SessionwardError):
                self._set_timeouts(statement_ms, lock_ms)
            raise
        self._set_timeouts(statement_ms, lock_ms)

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._conn.close()

    def _check_name_length(self, name: str) -> None:
        """Refuse a database name the server would cut short: the cut name may be another's.

        PostgreSQL keeps the first ``max_identifier_length`` (63) bytes of a
        name, in the server encoding, and drops the rest without an error.
        """
        if name in self._names_in_limit:
            return
        rows = self._fetch(self._queries.get_identifier_length, {"name": name})
        server_bytes, max_bytes = rows[0]
        length = max(len(name.encode("utf-8")), int(server_bytes))
        if length > max_bytes:
            raise ConfigurationError(
                f"database name {name!r} is {length} bytes long, over PostgreSQL's limit of "
                f"{max_bytes} (max_identifier_length): the server would act on its first "
                f"{max_bytes} bytes, which may name another database; nothing was done"
            )
        self._names_in_limit.add(name)

    def _alter_database(
        self, name: str, *, allow_connections: bool, is_template: bool, denied: str
    ) -> None:
        from psycopg import sql

        statement = sql.SQL(self._queries.alter_database).format(
            name=sql.Identifier(name),
            allow_connections=sql.Literal(allow_connections),
            is_template=sql.Literal(is_template),
        )
        self._run(statement, denied=lambda: denied)

    def _set_timeouts(self, statement_ms: int, lock_ms: int) -> None:
        self._fetch(
            self._queries.set_timeouts,
            {"statement_timeout": str(statement_ms), "lock_timeout": str(lock_ms)},
        )

    def _run(
        self,
        statement: Any,
        *,
        denied: Callable[[], str] | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        """Execute a statement that returns no rows (DDL)."""
        with mapped_errors(
            self._target,
            statement_timeout_seconds=(
                self._statement_timeout_seconds if timeout_seconds is None else timeout_seconds
            ),
            lock_timeout_seconds=self._lock_timeout_seconds,
            denied=denied,
        ):
            self._statements += 1
            self._conn.execute(statement)

    def _signal(self, sql: str, pid: int, started_at: str | None, verb: str) -> bool:
        rows = self._fetch(
            sql,
            {"pid": pid, "started_at": started_at},
            denied=lambda: self._refusal(verb, pid),
        )
        return bool(rows and rows[0][0])

    def _refusal(self, verb: str, pid: int) -> str:
        """Say which privilege the role lacks to signal ``pid``."""
        try:
            rows = self._fetch(self._queries.get_backend_owner, {"pid": pid})
        except SessionwardError:
            rows = []
        user, superuser = rows[0] if rows else (None, None)
        who = f"user {user}" if user else "user unknown"
        if superuser:
            return (
                f"not permitted to {verb} pid {pid} ({who}): it is a superuser's session, "
                "which only a superuser may signal"
            )
        role = f'membership in role "{user}"' if user else "membership in its role"
        return (
            f"not permitted to {verb} pid {pid} ({who}): requires superuser, {role}, "
            "or pg_signal_backend (never enough for a superuser's session)"
        )

    def _fetch(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        *,
        denied: Callable[[], str] | None = None,
    ) -> list[Row]:
        with mapped_errors(
            self._target,
            statement_timeout_seconds=self._statement_timeout_seconds,
            lock_timeout_seconds=self._lock_timeout_seconds,
            denied=denied,
        ):
            self._statements += 1
            return self._conn.execute(sql, params).fetchall()


def libpq_url(target: Target) -> str:
    """The URL as libpq takes it: rebuilt from the parsed parts, without ``+driver``.

    Never the URL as written: libpq splits a raw '@' or '/' in a password
    differently from sessionward's parser, and would look the rest up as a host.

    >>> from sessionward.core import parse_target
    >>> libpq_url(parse_target("PostgreSQL+psycopg://app@db/shop"))
    'postgresql://app@db/shop'
    """
    return target.to_url()


def _not_owner(name: str, role: str) -> str:
    return (
        f"not permitted to drop database {name!r}: role {role!r} is neither its owner nor a "
        "superuser (either may stop new connections to it and drop it)"
    )


def _session(row: Row) -> Session:
    (
        _taken_at,
        pid,
        backend_type,
        has_owner,
        database,
        user,
        application,
        client_addr,
        client_port,
        state,
        session_age,
        xact_age,
        state_age,
        query_age,
        wait_event_type,
        wait_event,
        wait_age,
        wait_target,
        blocked_by,
        query,
        is_superuser,
        xmin_age,
        backend_start,
    ) = row
    return Session(
        pid=pid,
        backend_kind=_backend_kind(backend_type, has_owner, user),
        backend_type=backend_type or "unknown",
        database=database,
        user=user,
        application=application or None,
        client_addr=client_addr,
        # -1 is a Unix-socket client.
        client_port=client_port if client_port is not None and client_port >= 0 else None,
        state=state,
        session_age_seconds=session_age,
        xact_age_seconds=xact_age,
        state_age_seconds=state_age,
        query_age_seconds=query_age,
        wait=f"{wait_event_type}:{wait_event}" if wait_event_type else None,
        wait_age_seconds=wait_age,
        wait_target=wait_target,
        blocked_by=tuple(sorted(blocked_by)) if blocked_by else (),
        query=None if query == HIDDEN_QUERY else query,
        is_superuser=is_superuser,
        xmin_age=xmin_age,
        started_at=backend_start.isoformat() if backend_start is not None else None,
        origin=parse_origin(application, None if query == HIDDEN_QUERY else query),
    )


def _backend_kind(backend_type: str | None, has_owner: bool, user: str | None) -> str:
    if platform_of_login(user) is not None:
        return PLATFORM  # rdsadmin, cloudsqladmin, azuresu …: the managed platform's own
    if backend_type == "client backend":
        return CLIENT
    if backend_type == "walsender":
        return REPLICATION
    if backend_type is None and has_owner:
        # A row the role may not inspect hides its type; one with a database
        # and a role is taken for a client backend (the server still checks
        # privileges when it is signalled).
        return CLIENT
    # Parallel workers too: they end with their leader, never on their own.
    return BACKGROUND


def _milliseconds(seconds: float) -> int:
    """Round up, so a tiny positive timeout never becomes 0 (which means "off")."""
    return math.ceil(seconds * 1000) if seconds > 0 else 0


def _ignore_notice(diagnostic: object) -> None:
    """Swallow server notices and warnings instead of letting them reach logs."""
