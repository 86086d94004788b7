"""The PgBouncer adapter: one psycopg 3 connection to the admin console.

The console speaks only the simple query protocol: every command is sent
with no parameters and ``prepare=False`` (psycopg then sends it as one plain
query), on an autocommit connection (it knows no ``BEGIN``).  Commands live in
``commands/*.sql``, first line a ``--`` comment the console would refuse, so it
is dropped when loading.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ...core import (
    ConfigurationError,
    ConnectionFailed,
    DriverNotInstalled,
    SessionwardError,
    Target,
)
from ...core._pooler import (
    PoolerClient,
    PoolerSnapshot,
    client_from_row,
    parse_pooler_version,
    server_from_row,
)
from ..postgresql._errors import connect_error, reason

if TYPE_CHECKING:
    import psycopg

_DRIVER_HINT = "the PgBouncer adapter needs psycopg 3: pip install 'sessionward[postgresql]'"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5
#: SQLSTATE PostgreSQL sends for ``SHOW VERSION`` (no such setting): not a console.
_UNDEFINED_OBJECT = "42704"


@functools.cache
def command(name: str) -> str:
    """The console command ``commands/<name>.sql``, without its comment line."""
    text = (resources.files(__package__) / "commands" / f"{name}.sql").read_text("utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("--")]
    return " ".join(line.strip() for line in lines)


class PgBouncerAdmin:
    """A connection to a PgBouncer admin console (database ``pgbouncer``).

    Create it with ``connect``; use it as a context manager or call ``close``.
    """

    def __init__(self, conn: psycopg.Connection[Any], *, target: Target, version_text: str) -> None:
        self._conn = conn
        self._target = target
        self.version = parse_pooler_version(version_text)

    @classmethod
    def connect(cls, target: Target) -> PgBouncerAdmin:
        """Log in to the console at ``target`` and read its version.

        Raise ``ConnectionFailed`` when it cannot be reached, and
        ``ConfigurationError`` when the URL leads to something that is not a
        PgBouncer admin console (a PostgreSQL server, a pooled database).
        """
        if target.kind != "postgresql":
            raise ConfigurationError(
                f"--pgbouncer: {target.redacted()} is not a postgresql:// URL of a PgBouncer "
                "admin console (database pgbouncer)"
            )
        try:
            import psycopg
        except ImportError:
            raise DriverNotInstalled(_DRIVER_HINT) from None
        options: dict[str, Any] = {}
        if not any(key == "connect_timeout" for key, _ in target.params):
            options["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_SECONDS
        try:
            conn = psycopg.connect(target.to_url(), autocommit=True, **options)
        except psycopg.ProgrammingError as error:
            raise ConfigurationError(
                f"invalid PgBouncer URL {target.redacted()}: {reason(error, target)}"
            ) from error
        except psycopg.Error as error:
            raise connect_error(error, target) from error
        try:
            rows = _run(conn, target, command("show_version"), first=True)
            text = str(rows[0][0]) if rows and rows[0] else ""
            try:
                return cls(conn, target=target, version_text=text)
            except ConfigurationError:
                raise ConfigurationError(
                    f"--pgbouncer: {target.redacted()} is not a PgBouncer admin console "
                    "(SHOW VERSION named no PgBouncer)"
                ) from None
        except BaseException:
            conn.close()
            raise

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    def snapshot(self) -> PoolerSnapshot:
        """Read ``SHOW CLIENTS`` and ``SHOW SERVERS``."""
        clients = tuple(client_from_row(row) for row in self._rows(command("show_clients")))
        servers = tuple(server_from_row(row) for row in self._rows(command("show_servers")))
        return PoolerSnapshot(self.version, clients=clients, servers=servers)

    def kill_client(self, client: PoolerClient) -> None:
        """End one client connection with ``KILL_CLIENT`` (PgBouncer 1.24+)."""
        if client.id is None:
            raise ConfigurationError(
                f"PgBouncer {self.version_text} shows no client id to KILL_CLIENT {client.client}"
            )
        _run(self._conn, self._target, command("kill_client").format(client_id=int(client.id)))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PgBouncerAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _rows(self, text: str) -> Iterator[dict[str, Any]]:
        with _mapped(self._conn, self._target):
            cursor = self._conn.execute(text, prepare=False)
            names = [column.name for column in cursor.description or ()]
            for row in cursor.fetchall():
                yield dict(zip(names, row, strict=True))


def _run(
    conn: psycopg.Connection[Any], target: Target, text: str, *, first: bool = False
) -> list[tuple[Any, ...]]:
    with _mapped(conn, target, first=first):
        cursor = conn.execute(text, prepare=False)
        return list(cursor.fetchall()) if cursor.description else []


@contextmanager
def _mapped(
    conn: psycopg.Connection[Any], target: Target, *, first: bool = False
) -> Iterator[None]:
    """psycopg errors on the console as sessionward errors, by SQLSTATE.

    ``first``: the version query, where a SQLSTATE from PostgreSQL itself
    (``42704``, or any query result) means the URL leads to a server, not to
    the console.
    """
    import psycopg

    where = target.redacted()
    try:
        yield
    except psycopg.Error as error:
        state = error.sqlstate
        if first and state == _UNDEFINED_OBJECT:
            raise ConfigurationError(
                f"--pgbouncer: {where} is a PostgreSQL server, not a PgBouncer admin console "
                "(connect to the database named pgbouncer on the pooler's port)"
            ) from error
        if conn.closed or conn.broken:
            raise ConnectionFailed(
                f"lost the connection to {where}: {reason(error, target)}"
            ) from error
        raise SessionwardError(
            f"PgBouncer console {where} refused ({state}): {reason(error, target)}"
        ) from error
