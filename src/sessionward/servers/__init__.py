"""Server adapters: one per engine, each behind the ``core.Backend`` protocol."""

from __future__ import annotations

from ..core import Backend, Target


def open_backend(target: Target, *, statement_timeout_seconds: float = 5.0) -> Backend:
    """Connect to ``target`` with the adapter for its kind.

    Catalog reads run under ``statement_timeout_seconds`` so a sick server
    cannot hang the caller.  Raise ``ConnectionFailed`` (or
    ``AuthenticationFailed``) when the server cannot be reached, and
    ``DriverNotInstalled`` when the driver is missing.
    """
    if target.kind == "postgresql":
        from .postgresql import PostgresBackend

        return PostgresBackend.connect(target, statement_timeout_seconds=statement_timeout_seconds)
    from .mysql import MySQLBackend

    return MySQLBackend.connect(target, statement_timeout_seconds=statement_timeout_seconds)


__all__ = ["open_backend"]
