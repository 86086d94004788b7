"""Options shared by ``ls``, ``cancel`` and ``terminate``, and the filter they build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ...core import (
    SessionFilter,
    compile_query_regex,
    parse_client,
    parse_state,
)
from .._params import DURATION

F = TypeVar("F", bound=Callable[..., Any])


_FILTER_OPTIONS: tuple[Callable[[F], F], ...] = (
    click.option("--database", "-d", "databases", multiple=True, metavar="NAME",
                 help="Database name; * wildcards; repeat for any of several."),
    click.option("--user", "-U", "users", multiple=True, metavar="NAME",
                 help="User (role) name; * wildcards; repeatable."),
    click.option("--app", "applications", multiple=True, metavar="NAME",
                 help="Application name; * wildcards; repeatable."),
    click.option("--client", "clients", multiple=True, metavar="ADDR",
                 help="Client address or CIDR range, or 'local' for socket clients; repeatable."),
    click.option("--state", "states", multiple=True, metavar="STATE",
                 help="active, idle, idle-in-transaction, …; repeatable."),
    click.option("--query", "query", metavar="REGEX",
                 help="Current or last statement matches this regex: Python re syntax, "
                      "case-insensitive, matched by sessionward (not the server's dialect; "
                      "no POSIX [[:alpha:]] classes)."),
    click.option("--idle-over", type=DURATION, metavar="DURATION",
                 help="Idle (in a transaction or not) for longer than this."),
    click.option("--xact-over", type=DURATION, metavar="DURATION",
                 help="Transaction open for longer than this."),
    click.option("--query-over", type=DURATION, metavar="DURATION",
                 help="Current statement running for longer than this (active sessions)."),
    click.option("--blocking", is_flag=True, help="Holds a lock another session waits for."),
    click.option("--blocked", is_flag=True, help="Waits for a lock another session holds."),
)  # fmt: skip


def filter_options(command: F) -> F:
    for option in reversed(_FILTER_OPTIONS):
        command = option(command)
    return command


def build_filter(options: dict[str, Any], *, include_background: bool = False) -> SessionFilter:
    return SessionFilter(
        databases=tuple(options["databases"]),
        users=tuple(options["users"]),
        applications=tuple(options["applications"]),
        clients=tuple(parse_client(c) for c in options["clients"]),
        states=tuple(parse_state(s) for s in options["states"]),
        query=compile_query_regex(options["query"]) if options["query"] else None,
        idle_over_seconds=options["idle_over"],
        xact_over_seconds=options["xact_over"],
        query_over_seconds=options["query_over"],
        blocking=options["blocking"],
        blocked=options["blocked"],
        include_background=include_background,
    )


FILTER_KEYS = (
    "databases", "users", "applications", "clients", "states", "query", "idle_over",
    "xact_over", "query_over", "blocking", "blocked",
)  # fmt: skip


def pop_filter_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs.pop(key) for key in FILTER_KEYS}
