"""Sessions behind PgBouncer: which pooler client holds which server session.

::

    from sessionward.pgbouncer import connect_pooler

    with connect_pooler(server_url="postgresql://postgres@db/postgres",
                        pgbouncer_url="postgresql://postgres@pooler:6432/pgbouncer") as pooler:
        for row in pooler.view().rows:
            ...  # row.session (server side), row.client (pooler side), row.waiting
        pooler.terminate_client("10.0.0.7:51234")   # ends the server session it holds

``server_url`` reaches the PostgreSQL behind the pooler directly (the server
snapshot and ``pg_terminate_backend``); ``pgbouncer_url`` is the admin console.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import TracebackType

from ._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
from .core import ConfigurationError, EndResult, Safety, Snapshot, Target, parse_target
from .core._pooler import (
    KILL_CLIENT_SINCE,
    PooledSession,
    PoolerClient,
    PoolerServer,
    PoolerSnapshot,
    find_pooler_client,
    join_pooler,
)
from .servers.pgbouncer import PgBouncerAdmin


@dataclass(frozen=True, slots=True)
class PooledView:
    """The server snapshot, the pooler snapshot and their join, read together."""

    snapshot: Snapshot
    pooler: PoolerSnapshot
    rows: tuple[PooledSession, ...]

    def holder_of(self, client: PoolerClient) -> PooledSession | None:
        """The row of the server session ``client`` holds, if it holds one."""
        for row in self.rows:
            if row.session is not None and row.client is not None and row.client.ptr == client.ptr:
                return row
        return None


class PoolerControl:
    """A server connection and a PgBouncer console connection, used together."""

    def __init__(self, control: SessionControl, admin: PgBouncerAdmin) -> None:
        self._control = control
        self._admin = admin

    @property
    def control(self) -> SessionControl:
        return self._control

    @property
    def admin(self) -> PgBouncerAdmin:
        return self._admin

    def view(self) -> PooledView:
        """Read both sides and join them.

        The pooler is read before and after the server: a server connection
        that changed hands in between (transaction mode) is left unpaired
        rather than paired with the wrong client.
        """
        before = self._admin.snapshot()
        snapshot = self._control.snapshot()
        after = self._admin.snapshot()
        stable = {(s.ptr, s.link) for s in before.servers}
        pooler = PoolerSnapshot(
            after.version,
            clients=after.clients,
            servers=tuple(
                server if (server.ptr, server.link) in stable else replace(server, link=None)
                for server in after.servers
            ),
        )
        return PooledView(snapshot, pooler, join_pooler(snapshot, pooler))

    def terminate_client(
        self,
        client: str,
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        dry_run: bool = False,
        safety: Safety = Safety(),
    ) -> EndResult | None:
        """End the server session the pooler client ``client`` (``addr:port``) holds.

        Return its outcome, verified as for ``SessionControl.terminate``; ``None``
        when the client holds no server session now (waiting, or between
        transactions in transaction mode): nothing was ended.  Raise
        ``ConfigurationError`` when the pooler has no such client.
        """
        view = self.view()
        row = view.holder_of(find_pooler_client(view.pooler, client))
        if row is None or row.session is None:
            return None
        (result,) = self._control.terminate(
            [row.session.pid],
            wait_seconds=wait_seconds,
            dry_run=dry_run,
            safety=safety,
            snapshot=view.snapshot,
        )
        return result

    def kill_client(self, client: str) -> PoolerClient:
        """Disconnect the pooler client ``client`` with ``KILL_CLIENT`` (PgBouncer 1.24+).

        On an older PgBouncer raise ``ConfigurationError`` saying what to do
        instead; nothing is ended then.
        """
        if self._admin.version < KILL_CLIENT_SINCE:
            raise ConfigurationError(kill_client_refusal(self._admin.version_text))
        found = find_pooler_client(self._admin.snapshot(), client)
        self._admin.kill_client(found)
        return found

    def close(self) -> None:
        try:
            self._admin.close()
        finally:
            self._control.close()

    def __enter__(self) -> PoolerControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def kill_client_refusal(version: str) -> str:
    """Why ``KILL_CLIENT`` cannot run on PgBouncer ``version``, and what to do instead."""
    since = ".".join(str(part) for part in KILL_CLIENT_SINCE[:2])
    return (
        f"PgBouncer {version} has no KILL_CLIENT (it came in {since}); nothing was ended: "
        "end the server session the client holds instead (sessionward pgbouncer-end without "
        "--kill-client), or KILL the whole pooled database from the admin console"
    )


def connect_pooler(*, server_url: str | Target, pgbouncer_url: str | Target) -> PoolerControl:
    """Connect to the server behind the pooler and to the pooler's admin console."""
    admin = PgBouncerAdmin.connect(
        pgbouncer_url if isinstance(pgbouncer_url, Target) else parse_target(pgbouncer_url)
    )
    try:
        return PoolerControl(connect(server_url), admin)
    except BaseException:
        admin.close()
        raise


__all__ = [
    "PooledSession",
    "PooledView",
    "PoolerClient",
    "PoolerControl",
    "PoolerServer",
    "PoolerSnapshot",
    "connect_pooler",
    "join_pooler",
    "kill_client_refusal",
]
