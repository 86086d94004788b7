"""What dropping a database did: the sessions it ended and whether it is gone."""

from __future__ import annotations

from dataclasses import dataclass

from ._endings import EndResult, Outcome


@dataclass(frozen=True, slots=True)
class DropResult:
    """The outcome of ``SessionControl.drop_database``.

    ``ended`` holds one result per session that used the database, each with
    the session as it was seen before (user, application, client, idle age).
    """

    database: str
    #: The database is gone.  Always False for a dry run.
    dropped: bool
    #: It existed when we looked; False only with ``if_exists``.
    existed: bool
    ended: tuple[EndResult, ...] = ()
    #: What could not be checked or was left undone, in words.
    notes: tuple[str, ...] = ()

    @property
    def not_ended(self) -> tuple[EndResult, ...]:
        """The sessions that may still use the database (not ended, not already gone)."""
        # Signalled but not waited for (``wait_seconds=0``) may still be there.
        done = (Outcome.ENDED, Outcome.WOULD_END, Outcome.ALREADY_GONE)
        return tuple(r for r in self.ended if r.outcome not in done)
