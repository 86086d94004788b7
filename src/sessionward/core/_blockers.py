"""The lock-wait forest: who blocks whom, root blockers first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._session import Session, Snapshot


@dataclass(frozen=True, slots=True)
class WaitNode:
    """A session and the sessions that wait directly on it."""

    session: Session
    waiters: tuple[WaitNode, ...]

    @property
    def pid(self) -> int:
        return self.session.pid

    def descendants(self) -> frozenset[int]:
        """Every pid waiting on this one, directly or down the chain."""
        found: set[int] = set()
        stack = list(self.waiters)
        while stack:
            node = stack.pop()
            if node.pid not in found:
                found.add(node.pid)
                stack.extend(node.waiters)
        return frozenset(found)


def lock_forest(snapshot: Snapshot) -> tuple[WaitNode, ...]:
    """Return one tree per root blocker, the root blocking most sessions first.

    A root blocks others and waits on no session of the snapshot.  A session
    that waits on two blockers stands under both.  Sessions caught in a cycle
    (a deadlock the server has not broken yet), or waiting behind one, get the
    cycle's lowest pid as their root, so nothing that waits on a session of
    the snapshot is left out.  A session that only waits on a pid missing from
    the snapshot and blocks nobody is in no tree.
    """
    roots = [
        s.pid
        for s in snapshot.sessions
        if snapshot.blocking(s.pid) and not any(b in snapshot for b in s.blocked_by)
    ]
    trees = [_grow(snapshot, pid, frozenset()) for pid in roots]
    covered = set(roots).union(*(tree.descendants() for tree in trees))
    # What still waits on a session of the snapshot has a cycle upstream.  Only
    # cycles nothing else leads into become roots: the others hang below them.
    upstream = {
        s.pid: _upstream(snapshot, s.pid)
        for s in snapshot.sessions
        if s.pid not in covered and any(b in snapshot for b in s.blocked_by)
    }
    cycle_roots = {
        min(above)
        for pid, above in upstream.items()
        if all(pid in upstream.get(other, ()) for other in above)
    }
    trees.extend(_grow(snapshot, pid, frozenset()) for pid in sorted(cycle_roots))
    return tuple(sorted(trees, key=_root_rank))


def root_blockers(snapshot: Snapshot, pids: Iterable[int]) -> tuple[int, ...]:
    """The root blockers behind ``pids``: each pid's chain followed up to its roots.

    A pid that is itself a root counts; a pid that neither blocks nor waits has
    no root blocker.
    """
    forest = lock_forest(snapshot)
    wanted = set(pids)
    return tuple(tree.pid for tree in forest if tree.pid in wanted or wanted & tree.descendants())


def _grow(snapshot: Snapshot, pid: int, path: frozenset[int]) -> WaitNode:
    session = snapshot.get(pid)
    assert session is not None
    path = path | {pid}
    waiters = tuple(
        _grow(snapshot, waiter, path) for waiter in snapshot.blocking(pid) if waiter not in path
    )
    return WaitNode(session=session, waiters=waiters)


def _upstream(snapshot: Snapshot, pid: int) -> frozenset[int]:
    """Every pid of the snapshot ``pid`` waits on, directly or up the chain."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        session = snapshot.get(stack.pop())
        for blocker in session.blocked_by if session is not None else ():
            if blocker in snapshot and blocker not in found:
                found.add(blocker)
                stack.append(blocker)
    return frozenset(found)


def _root_rank(tree: WaitNode) -> tuple[int, float, int]:
    xact_age = tree.session.xact_age_seconds or 0.0
    return (-len(tree.descendants()), -xact_age, tree.pid)
