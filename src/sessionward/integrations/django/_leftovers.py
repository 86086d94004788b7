"""End the sessions left on Django's test databases, and only there.

Shared by the Django test runner and the pytest plugin.  A test database is a
throwaway copy that is about to be dropped or recreated, so every client
session on it is ended, superusers' included: a leftover ``psql`` opened as
``postgres`` blocks ``DROP DATABASE`` just as much as the application role.
The main database of every configured alias is never touched, and sessionward
itself connects to a database that is not a test database.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
from ...core import (
    ConnectionFailed,
    EndResult,
    Outcome,
    Safety,
    Session,
    SessionwardError,
    format_age,
    redact_url,
)
from ._databases import (
    PG_MAINTENANCE_DATABASE,
    names_of_test_databases,
    server_url,
    vendor_of,
)

#: Receives one line and its ``logging`` level.
Report = Callable[[str, int], None]

#: Ending sessions on a throwaway test database may include superusers' sessions;
#: replication senders are never chosen (they are not client sessions).
TEST_DATABASE_SAFETY = Safety(include_superusers=True)


def report_to_stderr(message: str, level: int) -> None:
    """The default ``Report``: every line to standard error."""
    del level
    sys.stderr.write(message + "\n")


@dataclass(frozen=True, slots=True)
class TestDatabaseGroup:
    """Test databases on one server, reached through the same login."""

    __test__ = False  # not a pytest test class, despite the name

    #: The Django aliases whose test databases these are.
    aliases: tuple[str, ...]
    #: Where to connect, tried in order; never one of ``names``.
    urls: tuple[str, ...]
    #: The test databases and their ``--parallel`` clones.
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TestDatabasePlan:
    """Which test databases to clear, and what was refused or skipped, with why."""

    __test__ = False

    groups: tuple[TestDatabaseGroup, ...] = ()
    #: One line per alias refused because a test name is a main database name.
    refusals: tuple[str, ...] = ()
    #: One line per alias skipped: another engine, a test mirror, no name.
    skipped: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for group in self.groups for name in group.names)


def plan_test_databases(
    databases: Mapping[str, Mapping[str, Any]],
    *,
    aliases: Iterable[str] | None = None,
    parallel: int = 0,
) -> TestDatabasePlan:
    """Pick the test databases of ``databases`` (Django's ``DATABASES``, main names).

    ``aliases`` limits the choice to the aliases a run sets up; ``parallel`` > 1
    adds the clones ``--parallel`` makes.  Test mirrors and engines other than
    PostgreSQL and MySQL/MariaDB are skipped; an alias whose test database name
    (or a clone's) is the main database of any alias on the same server is
    refused, so a main database is never touched.
    """
    chosen = list(databases if aliases is None else dict.fromkeys(aliases))
    clones = parallel if parallel > 1 else 0
    main_names: dict[tuple[str, str, str], set[str]] = {}
    for settings_dict in databases.values():
        if vendor_of(settings_dict) is not None and settings_dict.get("NAME"):
            main_names.setdefault(_server_key(settings_dict), set()).add(str(settings_dict["NAME"]))
    groups: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
    refusals: list[str] = []
    skipped: list[str] = []
    for alias in chosen:
        if alias not in databases:
            continue
        settings_dict = databases[alias]
        test = settings_dict.get("TEST") or {}
        vendor = vendor_of(settings_dict)
        if test.get("MIRROR"):
            skipped.append(f"{alias!r} is a test mirror of {test['MIRROR']!r}")
            continue
        if vendor is None:
            skipped.append(f"{alias!r} uses {settings_dict.get('ENGINE')!r}")
            continue
        if not settings_dict.get("NAME") and not test.get("NAME"):
            skipped.append(f"{alias!r} names no database")
            continue
        names = names_of_test_databases(settings_dict, parallel=clones)
        clash = sorted(set(names) & main_names.get(_server_key(settings_dict), set()))
        if clash:
            refusals.append(
                f"sessionward: refusing to end sessions for alias {alias!r}: its test "
                f"database name {clash[0]!r} is the name of a main database"
            )
            continue
        urls = _admin_urls(settings_dict, vendor, names)
        aliases_of_group, names_of_group = groups.setdefault(urls, ([], []))
        aliases_of_group.append(alias)
        names_of_group.extend(n for n in names if n not in names_of_group)
    return TestDatabasePlan(
        groups=tuple(
            TestDatabaseGroup(tuple(a), urls, tuple(n)) for urls, (a, n) in groups.items()
        ),
        refusals=tuple(refusals),
        skipped=tuple(skipped),
    )


def end_test_database_sessions(
    plan: TestDatabasePlan,
    *,
    report: Report = report_to_stderr,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> tuple[EndResult, ...]:
    """End every client session on the planned test databases and confirm each left.

    Reports one line per session ended (pid, user, application, client, state,
    idle age) at ``INFO``, one per session that could not be ended and one per
    server that could not be reached at ``WARNING``; it raises nothing for a
    server it cannot reach, so the caller's own error about that server shows.
    """
    for line in plan.refusals:
        report(line, logging.ERROR)
    results: list[EndResult] = []
    for group in plan.groups:
        try:
            results.extend(_end_group(group, report, wait_seconds))
        except SessionwardError as error:
            report(
                f"sessionward: could not end leftover sessions on {_listed(group.names)}: "
                f"{redact_url(str(error))}",
                logging.WARNING,
            )
    return tuple(results)


def _end_group(
    group: TestDatabaseGroup, report: Report, wait_seconds: float
) -> tuple[EndResult, ...]:
    with _connect_first(group.urls) as control:
        snapshot = control.snapshot()
        names = set(group.names)
        leftovers = [s.pid for s in snapshot.sessions if s.is_client and s.database in names]
        if not leftovers:
            return ()
        results = control.terminate(
            leftovers, safety=TEST_DATABASE_SAFETY, wait_seconds=wait_seconds, snapshot=snapshot
        )
    for result in results:
        if result.outcome is Outcome.ENDED:
            report(f"sessionward: ended leftover session {_describe(result)}", logging.INFO)
        elif result.outcome is not Outcome.ALREADY_GONE:
            report(
                f"sessionward: could not end leftover session {_describe(result)}: "
                f"{result.outcome.value}{': ' + result.detail if result.detail else ''}",
                logging.WARNING,
            )
    return results


def _connect_first(urls: Sequence[str]) -> SessionControl:
    error: ConnectionFailed | None = None
    for url in urls:
        try:
            return connect(url)
        except ConnectionFailed as failed:
            error = error or failed
    assert error is not None
    raise error


def _describe(result: EndResult) -> str:
    session: Session | None = result.session
    if session is None:
        return f"{result.pid}"
    idle = format_age(session.idle_age_seconds)
    parts = [
        f"user {session.user or '-'}",
        f"application {session.application or '-'}",
        f"client {session.client}",
        session.state or "-",
    ]
    if idle:
        parts.append(f"idle {idle}")
    return f"{result.pid} on {session.database!r} ({', '.join(parts)})"


def _listed(names: Collection[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _server_key(settings_dict: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(vendor_of(settings_dict)),
        str(settings_dict.get("HOST") or ""),
        str(settings_dict.get("PORT") or ""),
    )


def _admin_urls(
    settings_dict: Mapping[str, Any], vendor: str, test_names: Collection[str]
) -> tuple[str, ...]:
    """Where to connect to end sessions: never a test database.

    PostgreSQL: the maintenance database ``postgres``, as Django itself does,
    then the main database (in CI it often does not exist).  MySQL/MariaDB: no
    database at all.
    """
    if vendor != "postgresql":
        return (server_url(settings_dict, database=""),)
    urls = [server_url(settings_dict, database=PG_MAINTENANCE_DATABASE)]
    main = str(settings_dict.get("NAME") or "")
    if main and main not in test_names and main != PG_MAINTENANCE_DATABASE:
        urls.append(server_url(settings_dict, database=main))
    return tuple(urls)
