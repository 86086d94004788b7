"""``ls --pgbouncer`` and ``pgbouncer-end``: sessions seen through a PgBouncer."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.text import Text

from ..._control import DEFAULT_WAIT_SECONDS
from ...core import ConfigurationError, Outcome, Safety, Session, SessionFilter
from ...core._pooler import PooledSession, PoolerClient
from ...pgbouncer import PooledView, PoolerControl, connect_pooler
from .._params import DURATION
from ..shell import _render
from ..shell._process import EXIT_NOT_ALL_ENDED, say
from ..shell._render import Column, age_text, fitted_table, one_line, safe, state_text
from ..shell._target import resolve_url

_COLUMNS = (
    Column("PID", right=True),
    Column("DATABASE", cap=20, drop_rank=4),
    Column("USER", cap=16, drop_rank=3),
    Column("STATE", cap=32, floor=19),
    Column("XACT", right=True),
    Column("IDLE", right=True, drop_rank=2),
    Column("POOLER CLIENT", cap=22),
    Column("POOL", cap=28, drop_rank=1),
    Column("CLIENT APP", cap=20, drop_rank=0),
    Column("CLIENT WAIT", right=True),
)
_WAITING = "waiting for a server connection"
_UNPAIRED = "holds no server connection"


def open_pooler(dsn: str | None, pgbouncer: str) -> PoolerControl:
    if not pgbouncer.strip():
        raise ConfigurationError("--pgbouncer: empty (give the admin console URL, "
                                 "postgresql://user@pooler:6432/pgbouncer)")  # fmt: skip
    server = resolve_url(dsn)
    return connect_pooler(server_url=server.target(), pgbouncer_url=pgbouncer)


def pooled_ls(
    *,
    dsn: str | None,
    pgbouncer: str,
    session_filter: SessionFilter,
    sort_key: Callable[[Session], Any],
    as_json: bool,
    as_csv: bool,
) -> None:
    """``ls --pgbouncer``: server sessions with the pooler client holding each."""
    if as_csv:
        raise ConfigurationError("--pgbouncer: choose --json or the table, not --csv")
    with open_pooler(dsn, pgbouncer) as pooler:
        view = pooler.view()
    chosen = {session.pid for session in session_filter.select(view.snapshot)}
    paired = [(row, row.session) for row in view.rows if row.session is not None]
    sessions = [
        row
        for row, session in sorted(
            ((row, s) for row, s in paired if s.pid in chosen),
            key=lambda pair: (sort_key(pair[1]), pair[1].pid),
        )
    ]
    loose = [row for row in view.rows if row.session is None] if session_filter.is_empty() else []
    if as_json:
        sys.stdout.write(pooled_json(view, sessions, loose) + "\n")
        return
    console = _render.make_console()
    rows = [*sessions, *loose]
    if rows:
        cells = [_cells(row) for row in rows]
        queries = [one_line(row.session.query) if row.session else "" for row in rows]
        console.print(fitted_table(_COLUMNS, cells, "QUERY", queries, width=console.width))
    held = sum(1 for row in sessions if row.client is not None)
    waiting = sum(1 for row in loose if row.waiting)
    console.print(
        Text(
            f"{len(sessions)} server sessions, {held} held by a pooler client; "
            f"{waiting} pooler clients waiting for a server connection "
            f"(PgBouncer {view.pooler.version_text})",
            style="dim",
        )
    )
    for note in view.snapshot.degraded:
        console.print(_render.plain(f"note: {note}", style="dim"))


def _cells(row: PooledSession) -> list[Text]:
    session, client = row.session, row.client
    if session is not None:
        first = [
            Text(str(session.pid)),
            safe(session.database),
            safe(session.user),
            state_text(session),
            age_text(session.xact_age_seconds),
            age_text(session.idle_age_seconds),
        ]
    else:
        state = _WAITING if row.waiting else _UNPAIRED
        first = [Text("-"), safe(None), safe(None), safe(state, style="magenta"), Text(""),
                 Text("")]  # fmt: skip
    if client is None:
        return [*first, Text(""), Text(""), Text(""), Text("")]
    return [
        *first,
        safe(client.client, style="cyan"),
        safe(f"{client.user or '?'}@{client.database or '?'}"),
        safe(client.application),
        age_text(client.wait_seconds if client.wait_seconds else None, warn=1.0),
    ]


def pooled_json(
    view: PooledView, sessions: Sequence[PooledSession], loose: Sequence[PooledSession]
) -> str:
    return json.dumps(
        {
            "pooler": {
                "version": view.pooler.version_text,
                "kill_client": view.pooler.has_kill_client,
            },
            "sessions": [
                {**_session_dict(row.session), "pooler_client": _client_dict(row.client)}
                for row in sessions
                if row.session is not None
            ],
            "waiting_clients": [_client_dict(row.client) for row in loose if row.waiting],
            "unpaired_clients": [_client_dict(row.client) for row in loose if not row.waiting],
        },
        indent=2,
    )


def _session_dict(s: Session | None) -> dict[str, Any]:
    assert s is not None
    return {
        "pid": s.pid,
        "user": s.user,
        "database": s.database,
        "application": s.application,
        "client_addr": s.client_addr,
        "client_port": s.client_port,
        "state": s.state,
        "xact_age_seconds": s.xact_age_seconds,
        "idle_age_seconds": s.idle_age_seconds,
        "query": s.query,
    }


def _client_dict(c: PoolerClient | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "client": c.client,
        "addr": c.addr,
        "port": c.port,
        "user": c.user,
        "database": c.database,
        "application": c.application,
        "state": c.state,
        "wait_seconds": c.wait_seconds,
        "ptr": c.ptr,
        "id": c.id,
    }


@click.command("pgbouncer-end")
@click.argument("client")
@click.option("--pgbouncer", "pgbouncer", required=True, metavar="ADMIN_URL",
              help="PgBouncer admin console: postgresql://user@pooler:6432/pgbouncer")  # fmt: skip
@click.option(
    "--dsn",
    metavar="URL",
    help="The PostgreSQL server behind the pooler, reached directly  [default: $DATABASE_URL]",
)
@click.option("--kill-client", is_flag=True,
              help="Disconnect the pooler client with KILL_CLIENT (PgBouncer 1.24+) instead of "
                   "ending its server session.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would be ended; end nothing.")
@click.option("--wait", "wait_seconds", type=DURATION, default=DEFAULT_WAIT_SECONDS,
              show_default=f"{DEFAULT_WAIT_SECONDS:g}s",
              help="How long to wait for the server session to end.")  # fmt: skip
@click.option("--include-superusers", is_flag=True,
              help="Allow ending a superuser's session (a pool using postgres).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def pgbouncer_end_command(client: str, pgbouncer: str, dsn: str | None, kill_client: bool,
                          dry_run: bool, wait_seconds: float, include_superusers: bool,
                          as_json: bool) -> None:  # fmt: skip
    """End what the pooler client CLIENT (addr:port, as ls --pgbouncer shows it) uses.

    By default the server session it holds is terminated on the server
    (pg_terminate_backend, confirmed gone); the client sees the server's error.
    --kill-client disconnects the client at the pooler instead.

    Exit status: 0 when it ended, 1 when it did not (the client holds no server
    session now, or the session did not end), 2 on bad input.
    """
    with open_pooler(dsn, pgbouncer) as pooler:
        if kill_client:
            if dry_run:
                raise ConfigurationError("--kill-client: no --dry-run (nothing to preview)")
            found = pooler.kill_client(client)
            if as_json:
                sys.stdout.write(json.dumps({"client": found.client, "outcome": "killed"}) + "\n")
            else:
                click.echo(f"pooler client {found.client} disconnected (KILL_CLIENT)")
            return
        result = pooler.terminate_client(
            client,
            wait_seconds=wait_seconds,
            dry_run=dry_run,
            safety=Safety(include_superusers=include_superusers),
        )
    if result is None:
        say(f"pooler client {client} holds no server session now (waiting, or between "
            "transactions in transaction mode): nothing was ended")  # fmt: skip
        sys.exit(EXIT_NOT_ALL_ENDED)
    if as_json:
        sys.stdout.write(_render.results_json([result]) + "\n")
    else:
        console = _render.make_console()
        console.print(_render.results_table([result], width=console.width))
    if not result.ok or (result.outcome is Outcome.SIGNALLED and wait_seconds > 0):
        sys.exit(EXIT_NOT_ALL_ENDED)
