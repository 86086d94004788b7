"""Primary failover for ``harden()`` (see ``sessionward.integrations._failover``).

- at checkout, a connection that asked for a writable server and has since been
  told the server is read-only is replaced, and the engine's older pooled
  connections are retired with it (they are on the same server): ``_harden``
  folds ``reports_read_only`` into the slot's ``look``;
- a statement refused with ``25006`` on such a connection is reported to
  SQLAlchemy as a disconnect (``handle_error``, ``is_disconnect``): the
  connection and the pool's older ones are invalidated, and ``transaction()``
  reruns the unit, of which nothing was applied.
"""

from __future__ import annotations

import logging
from typing import Any

from .._failover import fenced, reports_read_only, wants_writable

logger = logging.getLogger("sessionward.sqlalchemy")

__all__ = ["on_error", "reports_read_only", "wants_writable", "writable_look"]


def writable_look(look: Any, driver: str, dbapi_connection: Any) -> Any:
    """``look`` (see ``_harden._Slot``), also true once the server reports it is read-only."""

    def look_or_read_only(timeout: int) -> Any:
        return look(timeout) or reports_read_only(driver, dbapi_connection)

    return look_or_read_only


def on_error(driver: str, context: Any) -> None:
    """``handle_error``: a write refused by a fenced server is a disconnect."""
    try:
        connection = context.connection
        if context.is_disconnect or connection is None or connection.invalidated:
            return
        if fenced(context.original_exception, driver, connection.connection.dbapi_connection):
            context.is_disconnect = True
    except Exception:  # fail open: the error goes on as it was
        logger.debug("could not judge a refused write", exc_info=True)
