"""``classify`` on errors shaped like asyncpg's and SQLAlchemy's asyncio adapters', no server.

What the servers and drivers really raise is asserted live in
``tests/integrations/errors/test_async_endings.py``; these pin the rules.
"""

from __future__ import annotations

import pytest

from sessionward.errors import (
    ConnectionLost,
    QueryCanceled,
    SessionTerminated,
    StatementTimeout,
    classify,
    translate,
)


def _error_class(module: str, name: str, sqlstate: str | None = None) -> type[Exception]:
    return type(name, (Exception,), {"__module__": module, "sqlstate": sqlstate})


AdminShutdown = _error_class("asyncpg.exceptions", "AdminShutdownError", "57P01")
ConnectionDoesNotExist = _error_class("asyncpg.exceptions", "ConnectionDoesNotExistError", "08003")
QueryCanceledError = _error_class("asyncpg.exceptions", "QueryCanceledError", "57014")
UniqueViolation = _error_class("asyncpg.exceptions", "UniqueViolationError", "23505")
AsyncpgInterface = _error_class("asyncpg.exceptions._base", "InterfaceError")
AsyncpgInternal = _error_class("asyncpg.exceptions._base", "InternalClientError")
# SQLAlchemy's adapter copies the SQLSTATE and keeps the driver's error as __cause__.
AdaptedError = _error_class("sqlalchemy.dialects.postgresql.asyncpg", "Error", "08003")


class SQLAlchemyDBAPIError(Exception):
    __module__ = "sqlalchemy.exc"

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig


def _terminated_mid_statement() -> Exception:
    error = ConnectionDoesNotExist("connection was closed in the middle of operation")
    error.__cause__ = AdminShutdown("terminating connection due to administrator command")
    return error


def _adapted(error: Exception) -> Exception:
    adapted = AdaptedError(str(error))
    adapted.__cause__ = error
    return SQLAlchemyDBAPIError(adapted)


@pytest.mark.parametrize("wrap", [lambda e: e, _adapted], ids=["raw", "sqlalchemy"])
def test_the_servers_code_behind_08003_wins(wrap):
    error = wrap(_terminated_mid_statement())
    assert classify(error) is SessionTerminated
    with pytest.raises(SessionTerminated) as translated, translate():
        raise error
    assert translated.value.code == "57P01"
    assert "administrator command" in str(translated.value)


def test_08003_alone_is_lost_with_its_code():
    error = ConnectionDoesNotExist("connection was closed in the middle of operation")
    assert classify(error) is ConnectionLost
    with pytest.raises(ConnectionLost) as translated, translate():
        raise _adapted(error)
    assert translated.value.code == "08003"


def test_an_unrelated_context_is_not_read():
    error = ConnectionDoesNotExist("connection was closed in the middle of operation")
    error.__context__ = UniqueViolation("duplicate key")
    assert classify(error) is ConnectionLost


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("canceling statement due to user request", QueryCanceled),
        ("canceling statement due to statement timeout", StatementTimeout),
    ],
)
def test_57014_by_its_text(text, expected):
    assert classify(QueryCanceledError(text)) is expected
    assert classify(_adapted(QueryCanceledError(text))) is expected


@pytest.mark.parametrize("wrap", [lambda e: e, _adapted], ids=["raw", "sqlalchemy"])
def test_closed_and_confused_connections_are_lost(wrap):
    assert classify(wrap(AsyncpgInterface("connection is closed"))) is ConnectionLost
    internal = AsyncpgInternal("cannot switch to state 11; another operation (2) is in progress")
    assert classify(wrap(internal)) is ConnectionLost


def test_other_asyncpg_errors_are_not_endings():
    busy = AsyncpgInterface("cannot perform operation: another operation is in progress")
    assert classify(busy) is None
    assert classify(UniqueViolation("duplicate key")) is None


def test_a_socket_error_is_lost_only_inside_an_adapter():
    assert classify(ConnectionResetError(104, "reset")) is None
    assert classify(_adapted(ConnectionResetError(104, "reset"))) is ConnectionLost
    assert classify(_adapted(ConnectionRefusedError(111, "refused"))) is None
