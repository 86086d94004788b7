"""Processlist rows turned into core values; pure functions, no driver."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ...core import (
    ACTIVE,
    BACKGROUND,
    CLIENT,
    IDLE,
    IDLE_IN_TRANSACTION,
    PLATFORM,
    REPLICATION,
    Session,
    parse_origin,
    platform_of_login,
)

SLEEP = "Sleep"
KILLED = "Killed"
LOCK_WAIT = "LOCK WAIT"
#: ``Session.wait`` for a transaction waiting on an InnoDB row lock.
ROW_LOCK_WAIT = "innodb row lock"
#: ``Session.wait`` for a connection told to end that has not noticed yet.
KILLED_WAIT = "killed"

_REPLICATION_COMMANDS = frozenset({"Binlog Dump", "Binlog Dump GTID"})
_BACKGROUND_USERS = {"system user": "system thread", "event_scheduler": "event scheduler"}
_REPLICA_THREADS = {
    "Slave_IO": "replica I/O thread",
    "Slave_SQL": "replica SQL thread",
    "Slave_worker": "replica worker",
}
#: Stages that mean waiting on something, besides those named "Waiting for …".
_WAIT_STAGES = frozenset({"User lock", "User sleep", "Locked", "Table lock"})


def parse_host(host: str | None) -> tuple[str | None, int | None]:
    """Split a processlist ``HOST`` into client address and port.

    A Unix socket (or named pipe) client shows as ``localhost`` or nothing:
    that is ``None``, a local client.  IPv6 comes unbracketed with the port
    appended; an IPv4-mapped address is given as IPv4 so ranges match.

    >>> parse_host("127.0.0.1:54321")
    ('127.0.0.1', 54321)
    >>> parse_host("::1:54321")
    ('::1', 54321)
    >>> parse_host("[2001:db8::7]:3307")
    ('2001:db8::7', 3307)
    >>> parse_host("::ffff:10.0.0.7:40000")
    ('10.0.0.7', 40000)
    >>> parse_host("app-1.example:5000")
    ('app-1.example', 5000)
    >>> parse_host("localhost"), parse_host(""), parse_host(None)
    ((None, None), (None, None), (None, None))
    """
    if not host or host == "localhost":
        return None, None
    address, sep, port_text = host.rpartition(":")
    if not sep or not port_text.isdigit():
        return _address(host), None
    address = address.removeprefix("[").removesuffix("]")
    return _address(address), int(port_text)


#: Each sweep sees the same hosts again; parsing addresses is most of a row's cost.
_cached_parse_host = functools.lru_cache(maxsize=4096)(parse_host)


def _address(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text  # a host name: the server resolves names unless skip_name_resolve
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def classify(command: str, user: str | None) -> tuple[str, str]:
    """Return ``(backend_kind, backend_type)`` for a processlist row.

    >>> classify("Binlog Dump GTID", "repl")
    ('replication', 'Binlog Dump GTID')
    >>> classify("Daemon", "event_scheduler")
    ('background', 'event scheduler')
    >>> classify("Slave_SQL", "system user")
    ('background', 'replica SQL thread')
    >>> classify("Sleep", "app")
    ('client', 'Sleep')
    >>> classify("Sleep", "rdsadmin")
    ('platform', 'rds platform login rdsadmin')
    """
    if command in _REPLICATION_COMMANDS:
        return REPLICATION, command
    platform = platform_of_login(user)
    if platform is not None:
        return PLATFORM, f"{platform} platform login {user}"
    if command in _REPLICA_THREADS:
        return BACKGROUND, _REPLICA_THREADS[command]
    if user in _BACKGROUND_USERS:
        return BACKGROUND, _BACKGROUND_USERS[user]
    if command == "Daemon":
        return BACKGROUND, "daemon"
    return CLIENT, command


def is_metadata_lock_wait(stage: str | None) -> bool:
    """True for the stages of a session waiting on a metadata lock.

    >>> is_metadata_lock_wait("Waiting for table metadata lock")
    True
    >>> is_metadata_lock_wait("Waiting for table level lock")
    False
    """
    return stage is not None and stage.startswith("Waiting for") and stage.endswith("metadata lock")


def wait_of(command: str, stage: str | None, trx_state: str | None) -> str | None:
    """What the session waits for: a row lock, a kill to land, or a waiting stage.

    >>> wait_of("Query", "Updating", "LOCK WAIT")
    'innodb row lock'
    >>> wait_of("Query", "Waiting for table metadata lock", None)
    'Waiting for table metadata lock'
    >>> wait_of("Query", "Sending data", "RUNNING") is None
    True
    """
    if trx_state == LOCK_WAIT:
        return ROW_LOCK_WAIT
    if command == KILLED:
        return KILLED_WAIT
    if stage and (stage.startswith("Waiting") or stage in _WAIT_STAGES):
        return stage
    return None


def grantee_user(grantee: str) -> str | None:
    """The user name of a ``'user'@'host'`` grantee.

    >>> grantee_user("'root'@'localhost'")
    'root'
    >>> grantee_user("'o''neil'@'%'")
    "o'neil"
    >>> grantee_user("PUBLIC") is None
    True
    """
    match = re.fullmatch(r"'((?:[^']|'')*)'@'.*'", grantee)
    return match.group(1).replace("''", "'") if match else None


def superusers(rows: Iterable[tuple[str, Any]]) -> dict[str, bool]:
    """Per user name, whether any of its accounts holds a superuser privilege.

    A name is absent when this login may not see its grants.  Any account of a
    name counts, since the processlist shows names without hosts.

    >>> superusers([("'a'@'%'", 0), ("'a'@'localhost'", 1), ("'b'@'%'", 0)])
    {'a': True, 'b': False}
    """
    found: dict[str, bool] = {}
    for grantee, flag in rows:
        name = grantee_user(grantee)
        if name is not None:
            found[name] = found.get(name, False) or bool(flag)
    return found


def seconds(value: Decimal | float | int | None) -> float | None:
    """A server number of seconds as a float.

    >>> seconds(Decimal("1.5")), seconds(None)
    (1.5, None)
    """
    return None if value is None else float(value)


def build_session(
    row: Mapping[str, Any],
    *,
    is_superuser: bool | None,
    application: str | None,
    blocked_by: tuple[int, ...],
    wait_target: str | None,
) -> Session:
    """Turn one ``list_sessions`` row into a ``Session``."""
    command = str(row["command"])
    user = row["user"] or None
    kind, backend_type = classify(command, user)
    trx_state = row["trx_state"]
    stage = row["stage"] or None
    state_age = seconds(row["state_age"])
    if kind == BACKGROUND:
        state = None
    elif command == SLEEP:
        # InnoDB starts a transaction at its first read or write: a bare BEGIN looks idle.
        state = IDLE_IN_TRANSACTION if trx_state is not None else IDLE
    else:
        state = ACTIVE
    address, port = _cached_parse_host(row["host"])
    return Session(
        pid=int(row["pid"]),
        backend_kind=kind,
        backend_type=backend_type,
        database=row["db"],
        user=user,
        application=application,
        client_addr=address,
        client_port=port,
        state=state,
        session_age_seconds=None,
        xact_age_seconds=seconds(row["xact_age"]),
        state_age_seconds=state_age,
        query_age_seconds=state_age if state == ACTIVE else None,
        wait=wait_of(command, stage, trx_state),
        wait_age_seconds=seconds(row["wait_age"]) if trx_state == LOCK_WAIT else None,
        wait_target=wait_target,
        blocked_by=blocked_by,
        query=row["query"],
        is_superuser=is_superuser if kind != BACKGROUND else None,
        xmin_age=None,
        # INFO is the running statement only: an idle session shows no comment.
        origin=parse_origin(application, row["query"]),
    )


# --------------------------------------------------------------------------- metadata locks


@dataclass(frozen=True, slots=True)
class MetadataLock:
    """A table metadata lock a session holds (``granted``) or waits for."""

    pid: int
    schema: str
    name: str
    granted: bool


def metadata_lock_blockers(
    waiters: Mapping[int, tuple[str | None, str | None]], locks: Iterable[MetadataLock]
) -> dict[int, tuple[tuple[int, ...], str]]:
    """Who each metadata-lock waiter waits on, and on which table.

    ``waiters`` maps each waiting pid to its current database and query.  A
    waiter's tables are the ones it waits for when the server says so
    (MySQL's pending locks); else, since MariaDB lists granted locks only, the
    locked tables its query names.  Its blockers hold a lock on such a table;
    when some of them wait on that table too, they are ahead in the queue and
    only they are named, so a chain stays a chain.

    >>> locks = [MetadataLock(1, "s", "t", True), MetadataLock(2, "s", "t", True)]
    >>> waiters = {2: ("s", "ALTER TABLE t ADD c INT"), 3: ("s", "SELECT * FROM `t`")}
    >>> metadata_lock_blockers(waiters, locks)
    {2: ((1,), 'metadata lock s.t'), 3: ((2,), 'metadata lock s.t')}
    """
    locks = list(locks)
    holders: dict[tuple[str, str], set[int]] = {}
    pending: dict[int, set[tuple[str, str]]] = {}
    for lock in locks:
        key = (lock.schema, lock.name)
        if lock.granted:
            holders.setdefault(key, set()).add(lock.pid)
        else:
            pending.setdefault(lock.pid, set()).add(key)
    wanted = {
        pid: pending.get(pid) or _named_tables(db, query, holders)
        for pid, (db, query) in waiters.items()
    }
    found: dict[int, tuple[tuple[int, ...], str]] = {}
    for pid, tables in wanted.items():
        for key in sorted(tables):
            others = holders.get(key, set()) - {pid}
            queued = {other for other in others if key in wanted.get(other, ())}
            blockers = queued or others
            if blockers:
                found[pid] = (tuple(sorted(blockers)), f"metadata lock {key[0]}.{key[1]}")
                break
    return found


def _named_tables(
    db: str | None, query: str | None, tables: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The tables of ``tables`` that ``query`` names, in its own database or qualified."""
    if not query:
        return set()
    return {
        (schema, name)
        for schema, name in tables
        if _names(query, name) and (schema == db or _names(query, schema))
    }


def _names(query: str, identifier: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(identifier)}(?![\w$])", query) is not None
