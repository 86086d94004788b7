"""sessionward for SQLAlchemy.

``apply_timeouts(engine, Timeouts(...))`` sets statement, lock and idle limits,
keepalives and the connect timeout on every connection the engine makes.
``classify_errors(engine)`` makes every connection-level ending invalidate the
connection, by error code, and keeps the server's reason psycopg2 would lose.
"""

from ..core import DriverNotInstalled

try:
    import sqlalchemy  # noqa: F401 - to say what is missing
except ImportError:
    raise DriverNotInstalled(
        "sessionward.sqlalchemy needs SQLAlchemy: pip install 'sessionward[sqlalchemy]'"
    ) from None

from ..integrations.sqlalchemy import apply_timeouts, classify_errors

__all__ = ["apply_timeouts", "classify_errors"]
