"""``classify_errors(engine)``: SQLAlchemy's ``handle_error`` event, used to classify by code."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

from ...core import SessionEnded, classify
from ...core._classify import server_reason


def classify_errors(engine: Engine) -> None:
    """Let ``engine`` treat every connection-level ending as a disconnect, and keep its reason.

    - SQLAlchemy decides whether to drop a connection from a list of messages
      for psycopg2; with this, every error ``classify`` calls a
      ``SessionEnded`` (by SQLSTATE or error number) invalidates the
      connection, whatever the language of the server's messages.
    - psycopg2 reports a server-ended session as "server closed the connection
      unexpectedly"; the server's own line ("FATAL: terminating connection due
      to administrator command") is read before SQLAlchemy closes the
      connection and added to the error, where people and ``classify`` see it.

    The error SQLAlchemy raises keeps its type; use ``sessionward.errors.translate``
    to get sessionward's.
    """
    event.listen(engine, "handle_error", _on_error)


def _on_error(context: ExceptionContext) -> None:
    original = context.original_exception
    reason = server_reason(original)
    if reason is not None and context.sqlalchemy_exception is not None:
        note = f"server said: {reason}"
        if note not in context.sqlalchemy_exception.detail:
            context.sqlalchemy_exception.add_detail(note)
    ending = classify(original)
    if ending is not None and issubclass(ending, SessionEnded) and not context.is_disconnect:
        context.is_disconnect = True
