"""The small protocol every server adapter implements.

Core, API and CLI see servers only through it; adapters turn driver rows into
core values and driver errors into ``sessionward`` errors.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ._session import ServerInfo, Snapshot


class Backend(Protocol):
    @property
    def server(self) -> ServerInfo: ...

    def snapshot(self) -> Snapshot:
        """Read every session, background processes included, and who blocks whom."""
        ...

    def cancel(self, pid: int) -> bool:
        """Ask ``pid`` to stop its statement; False when no such session exists.

        Raise ``PermissionDenied`` when the role may not signal it.
        """
        ...

    def terminate(self, pid: int) -> bool:
        """Ask ``pid`` to end its session; False when no such session exists.

        Raise ``PermissionDenied`` when the role may not signal it.
        """
        ...

    def probe(self, pids: Collection[int]) -> dict[int, str | None]:
        """For each pid still present, a token naming its running statement.

        The token is ``None`` when the session runs nothing; a new statement
        gets a new token, so a cancel is confirmed when the token changes.
        """
        ...

    def wait_for_exit(self, pid: int, *, timeout_seconds: float) -> None:
        """Wait a little for ``pid``, a session already told to terminate, to exit.

        Return when it exited, when the timeout passed, or earlier (callers
        probe again): PostgreSQL 14+ waits on the server, others sleep a poll
        interval.
        """
        ...

    def close(self) -> None: ...
