"""The SQL of the PostgreSQL adapter and the one version ladder that picks it.

Each query lives in ``queries/<verb>_<object>[_post_NNNNNN].sql``; a
``_post_NNNNNN`` file is the variant for ``server_version_num >= NNNNNN``.
``queries_for`` is the only place that looks at the server version.

DDL takes no bound values, so the few statements that name a database carry
``{placeholders}`` the adapter fills with ``psycopg.sql`` (``Identifier`` for
names), never with string formatting; every other query binds ``%(name)s``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from ...core import ConfigurationError

#: Oldest supported server, as ``server_version_num``.
MIN_VERSION_NUM = 130000
_SUFFIX = ".sql"


@dataclass(frozen=True, slots=True)
class Queries:
    """The text of every query, as one server version needs it."""

    get_server: str
    set_timeouts: str
    list_sessions: str
    probe_sessions: str
    cancel_backend: str
    terminate_backend: str
    #: Many sessions at once, for the reaper.
    terminate_backends: str
    get_backend_owner: str
    #: For dry runs: the pids the role may not signal.
    list_signal_refusals: str
    #: ``None`` where ``pg_terminate_backend`` cannot wait (before 14): poll instead.
    wait_backend: str | None
    #: A name's length in the server encoding, and the longest name kept whole.
    get_identifier_length: str
    get_database: str
    list_database_sessions: str
    #: The statements below hold ``{name}`` placeholders for ``psycopg.sql``.
    alter_database: str
    drop_database: str
    #: ``WITH (FORCE)``, which every supported version (13+) has.
    drop_database_force: str
    #: The reaper's leader lock.
    try_advisory_lock: str


def queries_for(version_num: int) -> Queries:
    """Return the variant of every query for ``server_version_num``.

    >>> queries_for(130012).wait_backend is None
    True
    >>> queries_for(120000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: PostgreSQL 12.0 is not supported ...
    """
    if version_num < MIN_VERSION_NUM:
        raise ConfigurationError(
            f"PostgreSQL {version_text(version_num)} is not supported "
            f"(sessionward needs PostgreSQL {version_text(MIN_VERSION_NUM)} or later)"
        )
    post_14 = version_num >= 140000
    return Queries(
        get_server=load("get_server"),
        set_timeouts=load("set_timeouts"),
        list_sessions=load("list_sessions_post_140000" if post_14 else "list_sessions"),
        probe_sessions=load("probe_sessions"),
        cancel_backend=load("cancel_backend"),
        terminate_backend=load("terminate_backend"),
        terminate_backends=load("terminate_backends"),
        get_backend_owner=load("get_backend_owner"),
        list_signal_refusals=load("list_signal_refusals"),
        wait_backend=load("wait_backend_post_140000") if post_14 else None,
        get_identifier_length=load("get_identifier_length"),
        get_database=load("get_database"),
        list_database_sessions=load("list_database_sessions"),
        alter_database=load("alter_database"),
        drop_database=load("drop_database"),
        drop_database_force=load("drop_database_force"),
        try_advisory_lock=load("try_advisory_lock"),
    )


def version_text(version_num: int) -> str:
    """Write a ``server_version_num`` as people do.

    >>> version_text(150020), version_text(90624)
    ('15.20', '9.6.24')
    """
    major, rest = divmod(version_num, 10000)
    if major >= 10:
        return f"{major}.{rest}"
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


@functools.cache
def load(name: str) -> str:
    """Read ``queries/<name>.sql`` from the installed package, once."""
    return (resources.files(__package__) / "queries" / f"{name}{_SUFFIX}").read_text(
        encoding="utf-8"
    )


def query_names() -> frozenset[str]:
    """Every query file shipped, without the ``.sql`` suffix."""
    folder = resources.files(__package__) / "queries"
    return frozenset(
        entry.name.removesuffix(_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX)
    )
