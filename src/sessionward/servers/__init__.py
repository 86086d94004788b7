"""Server adapters: one per engine, each behind the ``core.Backend`` protocol."""

from __future__ import annotations

from ..core import Backend, Target


def open_backend(
    target: Target, *, statement_timeout_seconds: float = 5.0, platform: str = "auto"
) -> Backend:
    """Connect to ``target`` with the adapter for its kind.

    Catalog reads run under ``statement_timeout_seconds`` so a sick server
    cannot hang the caller.  Raise ``ConnectionFailed`` (or
    ``AuthenticationFailed``) when the server cannot be reached, and
    ``DriverNotInstalled`` when the driver is missing.  ``platform``: the managed
    platform whose way of ending sessions to use (``rds``, ``aurora``, ``azure``,
    ``cloudsql``, ``self-managed``); ``auto`` asks the server.
    """
    if target.kind == "postgresql":
        from .postgresql import PostgresBackend

        return PostgresBackend.connect(
            target, statement_timeout_seconds=statement_timeout_seconds, platform=platform
        )
    from .mysql import MySQLBackend

    return MySQLBackend.connect(
        target, statement_timeout_seconds=statement_timeout_seconds, platform=platform
    )


__all__ = ["open_backend"]
