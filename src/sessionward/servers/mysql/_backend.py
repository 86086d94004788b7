"""The MariaDB/MySQL adapter: PyMySQL rows in, core values out.

What the servers do not tell, and so stays ``None``:

- ``session_age_seconds``: the processlist has no connect time.
- ``application``: only in ``performance_schema.session_connect_attrs``,
  which MariaDB leaves OFF by default.
- ``xmin_age``: a PostgreSQL notion.

InnoDB keeps transaction and lock-wait start times in whole seconds, so
``xact_age_seconds`` and ``wait_age_seconds`` are lower bounds up to one
second short; MariaDB's ``TIME_MS`` makes idle and statement ages exact,
MySQL's ``TIME`` rounds them down to whole seconds.  MariaDB's ``QUERY_ID``
names each statement for ``probe``; MySQL's processlist has no such id, so its
token is the statement's start second and a hash of its text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ...core import (
    ConfigurationError,
    DatabaseInUse,
    DriverNotInstalled,
    PermissionDenied,
    ServerInfo,
    Session,
    SessionwardError,
    Snapshot,
    Target,
    checked_platform,
)
from ...core._platform import SELF_MANAGED, mysql_platform
from ._errors import (
    DENIED,
    ER_DB_DROP_EXISTS,
    ER_DBACCESS_DENIED_ERROR,
    ER_KILL_DENIED_ERROR,
    ER_LOCK_WAIT_TIMEOUT,
    ER_NO_SUCH_THREAD,
    ER_PROCACCESS_DENIED_ERROR,
    ER_SP_DOES_NOT_EXIST,
    connect_error,
    driver_errors,
    errno_of,
    mapped_errors,
    translate,
)
from ._queries import (
    GET_SERVER,
    LIST_PLATFORM_PROCEDURES,
    Dialect,
    check_schema_name,
    compose,
    dialect_for,
    for_platform,
    load,
    parse_version,
    quote_identifier,
    union_all,
)
from ._rows import (
    LOCK_WAIT,
    SLEEP,
    MetadataLock,
    build_session,
    is_metadata_lock_wait,
    metadata_lock_blockers,
    superusers,
)

if TYPE_CHECKING:
    import pymysql

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
#: Extra time the socket waits beyond the statement limit, so the server's
#: own limit (a clear error, connection kept) fires before the socket's.
SOCKET_MARGIN_SECONDS = 5.0
#: How long ``wait_for_exit`` sleeps at most before callers probe again.
EXIT_POLL_SECONDS = 0.02
#: InnoDB refreshes the cache behind INNODB_TRX, INNODB_LOCKS and
#: INNODB_LOCK_WAITS only when nobody read it for 0.1 s: a reader polling faster
#: sees it frozen.  Snapshots keep this far apart (with a margin) to stay fresh.
INNODB_CACHE_SECONDS = 0.12
#: The largest connection id the servers hand out (an unsigned 64-bit number).
MAX_PID = 2**64 - 1
#: How long DROP DATABASE may wait for a metadata lock before it fails, in the
#: whole seconds the servers count: the sessions using the schema were ended
#: just before, so a wait means a holder we could not see.
DROP_LOCK_WAIT_SECONDS = 2
#: The longest name ``GET_LOCK`` takes, in characters.
MAX_LOCK_NAME_CHARACTERS = 64
#: Schemas the server itself needs.
#: The dialect's own ``KILL``, as opposed to a platform's procedure.
_PLAIN_KILL = "kill_connection"
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

_PROCESS_HINT = (
    "only this login's own sessions are shown, without transactions or lock waits: "
    "grant PROCESS to see every session"
)
_PROCESS_HINT_SHORT = "grant PROCESS to see every session"
#: ``Snapshot.unlisted`` of a login lacking PROCESS; ``{kill}`` is the dialect's privilege.
_UNLISTED = (
    "this login lacks the PROCESS privilege, so it sees only its own sessions "
    "(ending other users' sessions also takes {kill})"
)
_APPLICATIONS_HINT = (
    "application names not shown: enable performance_schema (a server restart) "
    "and grant SELECT on performance_schema.session_connect_attrs"
)

#: The ``kind`` column of the whole read's rows (``list_sessions``, ``list_own_sessions``)
#: and of its side reads (``list_applications``, ``list_lock_waits``, ``list_metadata_locks``).
CLOCK = "clock"
SESSION = "session"
GRANTEE = "grantee"
APPLICATION = "application"
ROW_LOCK = "lock_wait"
METADATA_LOCK = "metadata_lock"

_BOOL_PARAMS = ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")
_TEXT_PARAMS = ("unix_socket", "charset", "ssl_ca", "ssl_cert", "ssl_key")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class MySQLBackend:
    """A ``core.Backend`` for MariaDB 10.6+ and MySQL 8.0+."""

    def __init__(
        self,
        conn: pymysql.connections.Connection[Any],
        *,
        target: Target,
        server: ServerInfo,
        dialect: Dialect,
        statement_timeout_seconds: float,
    ) -> None:
        self._conn = conn
        self._target = target
        self._server = server
        self._dialect = dialect
        self._limit = statement_timeout_seconds
        self._logged: set[str] = set()
        self._innodb_read_at = -INNODB_CACHE_SECONDS
        #: The last whole read that saw every session, and when it began (monotonic).
        self._last_read: tuple[Snapshot, float] | None = None
        #: What the last whole read could not see, for reads that skip those parts.
        self._degraded: tuple[str, ...] = ()
        #: Whether the last snapshot saw every session (PROCESS granted).
        self._sees_all = True
        #: Whether the server refused this login the whole process list (PROCESS).
        self._process_denied = False
        #: Side reads the server refused this login; left out of later reads.
        self._denied: set[str] = set()
        #: Statements sent on this connection since ``connect`` handed it over.
        self._statements = 0
        #: The managed platform sessions are ended through, or ``self-managed``.
        self.platform = SELF_MANAGED

    @classmethod
    def connect(
        cls, target: Target, *, statement_timeout_seconds: float, platform: str = "auto"
    ) -> MySQLBackend:
        """Open an autocommit connection whose every statement is capped by the server.

        ``platform``: where sessions are ended through a managed platform's procedures
        (``rds``, ``aurora``, ``azure``); ``auto`` looks for them.
        """
        platform = checked_platform(platform)
        if not statement_timeout_seconds > 0:
            raise ConfigurationError(
                f"statement_timeout_seconds must be positive, not {statement_timeout_seconds!r}"
            )
        try:
            import pymysql
        except ImportError:
            raise DriverNotInstalled(
                "MariaDB/MySQL support needs PyMySQL: pip install 'sessionward[mysql]'"
            ) from None
        socket_timeout = statement_timeout_seconds + SOCKET_MARGIN_SECONDS
        options = login_options(target)
        try:
            conn = pymysql.connect(
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=socket_timeout,
                write_timeout=socket_timeout,
                program_name="sessionward",
                **options,
            )
        except driver_errors().Error as error:
            raise connect_error(
                error, target, connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS
            ) from error
        except OSError as error:
            raise tls_files_error(error, target) from error
        try:
            with mapped_errors(target, statement_limit_seconds=statement_timeout_seconds):
                cursor = conn.cursor()
                cursor.execute(load(GET_SERVER))
                version, comment, own_pid = cursor.fetchone() or ("", "", 0)
                engine, version_num = parse_version(str(version), str(comment))
                dialect = dialect_for(engine, version_num)
                cursor.execute(
                    load(dialect.set_statement_limit),
                    {
                        "seconds": statement_timeout_seconds,
                        "milliseconds": max(1, round(statement_timeout_seconds * 1000)),
                    },
                )
                if platform == "auto":
                    cursor.execute(load(LIST_PLATFORM_PROCEDURES))
                    platform = mysql_platform({str(row[0]) for row in cursor.fetchall()})
                dialect = for_platform(dialect, platform)
        except BaseException:
            conn.close()
            raise
        server = ServerInfo(
            engine=engine, version=str(version), version_num=version_num, own_pid=int(own_pid)
        )
        backend = cls(
            conn,
            target=target,
            server=server,
            dialect=dialect,
            statement_timeout_seconds=statement_timeout_seconds,
        )
        backend.platform = platform
        return backend

    @property
    def server(self) -> ServerInfo:
        return self._server

    def snapshot(
        self, pids: Collection[int] | None = None, *, transactions_only: bool = False
    ) -> Snapshot:
        """Read every session but ours, its InnoDB transaction, and who blocks whom.

        ``pids``: only those sessions.  When the process list shows that each
        of them has slept since before the last whole read saw it (so it has
        run nothing since, and InnoDB's cached view of its transaction was
        already current then), it is that read's session with its ages
        advanced, at the cost of one process-list query; else a whole read.
        """
        if pids is None:
            return self._in_transactions() if transactions_only else self._read()
        wanted = {_checked_pid(pid) for pid in pids}
        carried = self._carried_forward(wanted)
        whole = carried or self._read()
        return Snapshot(
            server=whole.server,
            taken_at=whole.taken_at,
            sessions=tuple(
                s
                for s in whole.sessions
                if s.pid in wanted and (s.xact_age_seconds is not None or not transactions_only)
            ),
            degraded=whole.degraded,
            partial=True,
            unlisted=whole.unlisted,
        )

    def _in_transactions(self) -> Snapshot:
        """The sessions with an open InnoDB transaction: one small query while there are none."""
        self._space_innodb_reads()
        with self._errors():
            rows = self._all_or_denied(self._dialect.list_transactions)
        if rows is None:  # no PROCESS: the whole read shows this login's own sessions
            whole = self._read()
            holders = {s.pid for s in whole.sessions if s.xact_age_seconds is not None}
        else:
            self._innodb_read_at = time.monotonic()
            holders = {int(r["pid"]) for r in rows if r["pid"] is not None}
            if not holders:
                taken_at: dt.datetime = next(r["taken_at"] for r in rows if r["pid"] is None)
                return Snapshot(
                    server=self._server,
                    taken_at=taken_at.replace(tzinfo=dt.timezone.utc),
                    sessions=(),
                    degraded=self._degraded,
                    partial=True,
                )
            # InnoDB's cache was refreshed a moment ago: read it again at once.
            whole = self._read(spaced=False)
        return Snapshot(
            server=whole.server,
            taken_at=whole.taken_at,
            sessions=tuple(s for s in whole.sessions if s.pid in holders),
            degraded=whole.degraded,
            partial=True,
            unlisted=whole.unlisted,
        )

    def _space_innodb_reads(self) -> None:
        time.sleep(max(0.0, self._innodb_read_at + INNODB_CACHE_SECONDS - time.monotonic()))

    def _carried_forward(self, wanted: set[int]) -> Snapshot | None:
        """The sessions ``wanted`` as the last whole read saw them, aged; ``None`` when
        one of them may have changed since (or this server has no idle times)."""
        last = self._last_read
        query = self._dialect.list_idle_times
        if last is None or query is None or not wanted:
            return None
        whole, read_at = last
        # The cached INNODB_TRX that read saw may be this much older than the read.
        cache_current_after = read_at - INNODB_CACHE_SECONDS
        with self._errors():
            rows = self._all(query, {"pids": tuple(sorted(wanted))})
        answered = time.monotonic()
        sessions = []
        taken_at: dt.datetime = whole.taken_at
        for row in rows:
            before = whole.get(int(row["pid"]))
            if before is None or not before.is_idle or row["command"] != SLEEP:
                return None
            idle_seconds = float(row["time_ms"]) / 1000
            if answered - idle_seconds >= cache_current_after:
                return None  # it went idle after InnoDB's view was taken: not proven
            taken_at = row["taken_at"].replace(tzinfo=dt.timezone.utc)
            elapsed = (taken_at - whole.taken_at).total_seconds()
            xact_age = before.xact_age_seconds
            sessions.append(
                dataclasses.replace(
                    before,
                    state_age_seconds=idle_seconds,
                    xact_age_seconds=None if xact_age is None else xact_age + elapsed,
                )
            )
        return Snapshot(
            server=self._server,
            taken_at=taken_at,
            sessions=tuple(sessions),
            degraded=whole.degraded,
            partial=True,
            unlisted=whole.unlisted,
        )

    def _read(self, *, spaced: bool = True) -> Snapshot:
        """Every session: the whole read, in two statements at most.

        The first holds the clock, the optional sources, the sessions and the
        superusers; the second, only while a session waits on a lock or the
        server names applications, holds those side reads together.
        """
        dialect = self._dialect
        degraded: list[str] = []
        if spaced:
            self._space_innodb_reads()
        read_at = time.monotonic()
        with self._errors():
            # Global privileges are read at login: PROCESS refused once stays refused.
            rows = None if self._process_denied else self._all_or_denied(dialect.list_sessions)
            full = self._sees_all = rows is not None
            if rows is None:
                self._process_denied = True
                degraded.append(_PROCESS_HINT)
                rows = self._all(dialect.list_own_sessions)
            sources = next(r for r in rows if r["kind"] == CLOCK)
            admins = superusers(
                (r["user"], r["is_superuser"]) for r in rows if r["kind"] == GRANTEE
            )
            rows = [r for r in rows if r["kind"] == SESSION]
            side = self._side_reads(rows, sources, full=full, degraded=degraded)
            self._innodb_read_at = time.monotonic()
        applications = {int(r["pid"]): str(r["detail"]) for r in side if r["kind"] == APPLICATION}
        waits: dict[int, set[int]] = {}
        targets: dict[int, str] = {}
        for wait in (r for r in side if r["kind"] == ROW_LOCK):
            waiting = int(wait["pid"])
            waits.setdefault(waiting, set()).add(int(wait["other_pid"]))
            if wait["detail"]:
                targets.setdefault(waiting, f"table {wait['detail']}")
        self._metadata_lock_waits(rows, side, waits, targets)
        sessions = tuple(
            build_session(
                row,
                is_superuser=admins.get(row["user"]) if row["user"] else None,
                application=applications.get(int(row["pid"])),
                blocked_by=tuple(sorted(waits.get(int(row["pid"]), ()))),
                wait_target=targets.get(int(row["pid"])),
            )
            for row in rows
        )
        for line in degraded:
            if line not in self._logged:
                self._logged.add(line)
                logger.info("%s: %s", self._target.redacted(), line)
        taken_at: dt.datetime = sources["taken_at"]
        whole = Snapshot(
            server=self._server,
            taken_at=taken_at.replace(tzinfo=dt.timezone.utc),
            sessions=sessions,
            degraded=tuple(degraded),
            unlisted="" if full else _UNLISTED.format(kill=self._dialect.kill_privilege),
        )
        # Only a read that saw every session's transaction can vouch for one later.
        self._last_read = (whole, read_at) if full else None
        self._degraded = whole.degraded
        return whole

    @property
    def statements_sent(self) -> int:
        """How many statements this connection has sent the server (``top`` shows a
        refresh's share)."""
        return self._statements

    def cancel(self, pid: int, *, started_at: str | None = None) -> bool:
        """Stop the statement ``pid`` runs with ``KILL QUERY``.

        ``started_at`` is not needed: connection ids are never reused.
        """
        return self._kill(self._dialect.kill_query, pid)

    def terminate(self, pid: int, *, started_at: str | None = None) -> bool:
        """End the session ``pid`` with ``KILL CONNECTION`` (ids are never reused)."""
        return self._kill(self._dialect.kill_connection, pid)

    def terminate_many(self, targets: Sequence[tuple[int, str | None]]) -> None:
        """``None``: ``KILL`` ends one connection per statement; each is terminated singly,
        so each gets its own outcome."""

    def foresee_refusals(self, action: str, sessions: Sequence[Session]) -> dict[int, str]:
        """The sessions of other users, when this login's own grants cannot end them.

        ``KILL`` takes the same user name or CONNECTION ADMIN / SUPER; with a
        role in effect nothing is foreseen (roles' grants are not read).
        """
        if not sessions or self._dialect.kill_connection != _PLAIN_KILL:
            return {}  # a platform's procedure decides with the platform's own rights
        with self._errors():
            grants = self._all(self._dialect.get_kill_privilege)[0]
        if grants["may_kill_any"] or grants["has_role"]:
            return {}
        own = str(grants["user_name"])
        return {s.pid: self._kill_denied(s.pid) for s in sessions if s.user != own}

    def try_leader_lock(self, name: str) -> bool:
        """Take the named lock ``name`` without waiting; held until this connection ends."""
        if len(name) > MAX_LOCK_NAME_CHARACTERS:
            raise ConfigurationError(
                f"lock name {name!r} is {len(name)} characters long, over the server's limit "
                f"of {MAX_LOCK_NAME_CHARACTERS}"
            )
        rows = self._all(self._dialect.get_lock, {"name": name})
        return bool(rows and rows[0]["acquired"] == 1)

    def probe(self, pids: Collection[int]) -> dict[int, str | None]:
        """Return a token of the running statement of each pid still listed.

        A killed connection stays listed (command ``Killed``) until it has
        rolled back and exited, and counts as present until then.
        """
        wanted = tuple(sorted({_checked_pid(pid) for pid in pids}))
        if not wanted:
            return {}
        with self._errors():
            rows = self._all(self._dialect.probe_sessions, {"pids": wanted})
        return {int(r["pid"]): None if r["token"] is None else str(r["token"]) for r in rows}

    def wait_for_exit(
        self, pid: int, *, timeout_seconds: float, started_at: str | None = None
    ) -> None:
        """Sleep a poll interval: neither server can wait for a session's exit."""
        time.sleep(max(0.0, min(timeout_seconds, EXIT_POLL_SECONDS)))

    def database_exists(self, name: str) -> bool:
        """Whether schema ``name`` exists; refuse ours, system ones, and one this login
        may not drop (``PermissionDenied``, before any session is ended)."""
        if name.lower() in SYSTEM_SCHEMAS:
            raise ConfigurationError(f"refusing to drop {name}: the server itself needs it")
        check_schema_name(name)  # refuse what cannot be a name before asking
        with self._errors():
            row = self._all(self._dialect.get_database, {"name": name})[0]
            grants = self._all(self._dialect.get_schema_privileges, {"name": name})[0]
        if row["current_schema"] is not None and str(row["current_schema"]) == name:
            raise ConfigurationError(
                f"cannot drop database {name!r}: sessionward's connection uses it as its "
                "default schema; connect without one (mysql://host/) or with another"
            )
        present = bool(row["present"])
        # Roles' grants are not read: with a role in effect, the DROP decides.
        if not grants["may_drop"] and not grants["has_role"]:
            # A login sees only the schemas it holds a privilege on: an absent
            # one may exist all the same.
            unseen = "" if present else " (holding none, it cannot see whether it exists)"
            raise PermissionDenied(
                f"not permitted to drop database {name!r}: user {self._target.user!r} "
                f"lacks the DROP privilege on it{unseen}"
            )
        return present

    def block_connections(self, name: str) -> Callable[[], None]:
        """Do nothing: neither server can refuse new sessions on one schema."""
        return _nothing

    def database_users(self, name: str) -> tuple[frozenset[int], tuple[str, ...]]:
        """Sessions whose current schema is ``name`` and those holding metadata locks in it."""
        check_schema_name(name)
        notes: list[str] = []
        with self._errors():
            rows = self._all(self._dialect.list_database_sessions, {"name": name})
            holders = self._lock_holders(name, notes)
        pids = {int(r["pid"]) for r in rows}
        if not self._sees_all:
            notes.append(f"only this login's own sessions were seen: {_PROCESS_HINT_SHORT}")
        return frozenset(pids | holders), tuple(notes)

    def drop_database(self, name: str, *, force: bool, if_exists: bool) -> None:
        """``DROP DATABASE`` under a short metadata-lock wait (the server has no FORCE)."""
        check_schema_name(name)
        statement = compose(
            load(self._dialect.drop_database),
            name=quote_identifier(name),
            if_exists="IF EXISTS " if if_exists else "",
        )
        with self._errors():
            self._all(self._dialect.set_lock_wait, {"seconds": DROP_LOCK_WAIT_SECONDS})
        try:
            with self._conn.cursor() as cursor:
                self._statements += 1
                cursor.execute(statement)  # no bound values: no % is read
        except driver_errors().Error as error:
            raise self._drop_error(error, name) from error
        finally:
            # A lost connection fails this too: keep the error that matters.
            with contextlib.suppress(driver_errors().Error):
                self._all(self._dialect.reset_lock_wait)

    def close(self) -> None:
        if self._conn.open:
            self._conn.close()

    def _lock_holders(self, name: str, notes: list[str]) -> set[int]:
        """Sessions holding a metadata lock in ``name``; a note when they cannot be seen."""
        what = "sessions holding locks on its tables from another schema are not seen"
        available = bool(self._all(self._dialect.get_sources)[0]["metadata_locks"])
        rows = None
        if available:
            rows = self._all_or_denied(self._dialect.list_database_locks, {"name": name})
        if rows is None:
            notes.append(f"{what}: {self._dialect.metadata_locks_hint}")
            return set()
        return {int(r["pid"]) for r in rows}

    def _drop_error(self, error: pymysql.err.Error, name: str) -> SessionwardError:
        errno = errno_of(error)
        if errno == ER_DB_DROP_EXISTS:
            return ConfigurationError(f"database {name!r} does not exist")
        if errno == ER_DBACCESS_DENIED_ERROR:
            return PermissionDenied(
                f"not permitted to drop database {name!r}: user {self._target.user!r} "
                "lacks the DROP privilege on it"
            )
        if errno != ER_LOCK_WAIT_TIMEOUT:
            return translate(error, self._target, statement_limit_seconds=self._limit)
        # Name who may hold it: sessions with a lock seen in the schema, else any
        # session in a transaction (a transaction keeps the locks it took).
        notes: list[str] = []
        with contextlib.suppress(SessionwardError), self._errors():
            holders = self._lock_holders(name, notes)
        snapshot = self.snapshot()
        in_transaction = {
            s.pid for s in snapshot.sessions if s.is_client and s.xact_age_seconds is not None
        }
        suspects: tuple[Session, ...] = tuple(
            s for s in snapshot.sessions if s.pid in (holders or in_transaction)
        )
        who = ", ".join(f"pid {s.pid} ({s.user}, {s.state})" for s in suspects) or "none seen"
        kind = "holding a lock in it" if holders else "in a transaction, which may hold one"
        hint = f"; {notes[0]}" if notes else ""
        return DatabaseInUse(
            f"cannot drop database {name!r}: another session holds a lock on it and the "
            f"{DROP_LOCK_WAIT_SECONDS}s lock wait ran out; nothing was dropped; "
            f"sessions {kind}: {who}{hint}",
            sessions=suspects,
        )

    # ----------------------------------------------------------------------- helpers

    def _errors(self) -> AbstractContextManager[None]:
        return mapped_errors(self._target, statement_limit_seconds=self._limit)

    def _all(self, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._rows(load(name), params)

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        import pymysql.cursors

        with self._conn.cursor(pymysql.cursors.DictCursor) as cursor:
            self._statements += 1
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _all_or_denied(
        self, name: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]] | None:
        """Rows of a query, or ``None`` when this login lacks the privilege to read them."""

        try:
            return self._all(name, params)
        except driver_errors().Error as error:
            if errno_of(error) in DENIED:
                return None
            raise

    def _side_reads(
        self,
        rows: list[dict[str, Any]],
        sources: Mapping[str, Any],
        *,
        full: bool,
        degraded: list[str],
    ) -> list[dict[str, Any]]:
        """Applications, row-lock and metadata-lock waits, each where available and
        needed, in one statement; a part this login may not read is noted, and skipped
        from then on (PyMySQL reads a refusal as the whole statement's)."""
        dialect = self._dialect
        wanted: list[tuple[str, str]] = []  # (query, what is lost without it)
        if sources["applications"]:
            wanted.append((dialect.list_applications, _APPLICATIONS_HINT))
        else:
            degraded.append(_APPLICATIONS_HINT)
        if full:
            row_locks = f"row-lock blockers not shown: {dialect.lock_waits_hint}"
            metadata = f"metadata-lock blockers not shown: {dialect.metadata_locks_hint}"
            if not sources["lock_waits"]:
                degraded.append(row_locks)
            elif any(r["trx_state"] == LOCK_WAIT for r in rows):
                # The lock tables are read only when some transaction waits.
                wanted.append((dialect.list_lock_waits, row_locks))
            if not sources["metadata_locks"]:
                degraded.append(metadata)
            elif any(is_metadata_lock_wait(r["stage"]) for r in rows):
                wanted.append((dialect.list_metadata_locks, metadata))
        for name, lost in wanted:
            if name in self._denied:
                degraded.append(lost)
        names = [name for name, _ in wanted if name not in self._denied]
        if not names:
            return []
        try:
            return self._rows(union_all(names))
        except driver_errors().Error as error:
            if errno_of(error) not in DENIED:
                raise
        # Some part is refused: find which, once; the next reads leave it out.
        found: list[dict[str, Any]] = []
        for name, lost in wanted:
            if name not in names:
                continue
            part = self._all_or_denied(name)
            if part is None:
                self._denied.add(name)
                degraded.append(lost)
            else:
                found.extend(part)
        return found

    def _metadata_lock_waits(
        self,
        rows: list[dict[str, Any]],
        side: list[dict[str, Any]],
        waits: dict[int, set[int]],
        targets: dict[int, str],
    ) -> None:
        waiters = {
            int(r["pid"]): (r["db"], r["query"]) for r in rows if is_metadata_lock_wait(r["stage"])
        }
        locks = [
            MetadataLock(
                pid=int(r["pid"]),
                schema=str(r["object_schema"]),
                name=str(r["object_name"]),
                granted=bool(r["granted"]),
            )
            for r in side
            if r["kind"] == METADATA_LOCK
        ]
        if not waiters or not locks:
            return
        for pid, (blockers, target) in metadata_lock_blockers(waiters, locks).items():
            waits.setdefault(pid, set()).update(blockers)
            targets.setdefault(pid, target)

    def _kill(self, name: str, pid: int) -> bool:

        pid = _checked_pid(pid)
        if pid == self._server.own_pid:
            raise SessionwardError("refusing to end sessionward's own session")
        try:
            self._all(name, {"pid": pid})
        except driver_errors().Error as error:
            errno = errno_of(error)
            if errno == ER_NO_SUCH_THREAD:
                return False
            if errno in (ER_KILL_DENIED_ERROR, ER_PROCACCESS_DENIED_ERROR):
                raise PermissionDenied(self._kill_denied(pid)) from error
            if errno == ER_SP_DOES_NOT_EXIST:
                raise ConfigurationError(
                    f"platform {self.platform}: this server has no "
                    f"{self._dialect.kill_privilege.removeprefix('EXECUTE on ')} procedure "
                    "(choose --platform self-managed, or auto to look)"
                ) from error
            raise translate(error, self._target, statement_limit_seconds=self._limit) from error
        return True

    def _kill_denied(self, pid: int) -> str:
        return (
            f"not allowed to end session {pid}: needs the {self._dialect.kill_privilege} privilege"
        )


def _nothing() -> None:
    """The undo of a step that changed nothing."""


def _checked_pid(pid: object) -> int:
    """Accept only a real connection id: KILL gets it as a literal, not a bound value."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID:
        raise ConfigurationError(f"not a connection id: {pid!r}")
    return pid


def login_options(target: Target) -> dict[str, Any]:
    """``pymysql.connect`` arguments for ``target``: who, where, and the URL's options.

    The password goes as UTF-8 bytes: given text, PyMySQL encodes it as
    Latin-1, which fails on most non-ASCII passwords.
    """
    password = target.password or ""
    return {
        "host": target.host or "localhost",
        "port": target.port or 3306,
        "user": target.user,
        "password": password.encode(),
        "database": target.database,
        **_url_options(target),
    }


def tls_files_error(error: OSError, target: Target) -> ConfigurationError:
    """A TLS file of the URL (``ssl_ca``, ``ssl_cert``, ``ssl_key``) PyMySQL could not load.

    PyMySQL builds its TLS context before connecting, so any ``OSError`` it
    lets through (rather than wrapping as error 2003) comes from those files.
    """
    what = f"{error.filename!r}: " if error.filename else ""
    words = target.scrub(error.strerror or str(error))
    return ConfigurationError(
        f"cannot use the TLS files of {target.redacted()}: {what}{words[:1].lower()}{words[1:]}"
    )


def _url_options(target: Target) -> dict[str, Any]:
    """PyMySQL options from the URL query: ``?unix_socket=/run/mysqld/mysqld.sock&ssl_ca=…``."""
    options: dict[str, Any] = {}
    for key, value in target.params:
        if key in _TEXT_PARAMS:
            options[key] = value
        elif key in _BOOL_PARAMS:
            word = value.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ConfigurationError(
                    f"option {key} in {target.redacted()} is neither true nor false "
                    f"(use one of {', '.join(_TRUE + _FALSE)})"
                )
            options[key] = word in _TRUE
        else:
            known = ", ".join(_TEXT_PARAMS + _BOOL_PARAMS)
            raise ConfigurationError(
                f"unknown option {key!r} in {target.redacted()} (known: {known})"
            )
    charset = options.get("charset")
    if charset is not None and not _known_charset(charset):
        raise ConfigurationError(
            f"unknown charset {charset!r} in {target.redacted()} (for example utf8mb4)"
        )
    return options


def _known_charset(name: str) -> bool:
    from pymysql.charset import charset_by_name

    return charset_by_name(name) is not None
