"""``harden(engine, origin=...)``: each session names its service, host, pid and, while
checked out, its holder and the code line that took it, at no extra round trip.

- ``do_connect`` (a listener that returns nothing, so the engine's own connect
  path still makes the connection): ``service[pid]@host`` as PostgreSQL's
  application name (libpq's ``fallback_application_name``; asyncpg's
  ``server_settings``) or PyMySQL's / aiomysql's ``program_name`` connection
  attribute, only where the URL, ``connect_args`` and earlier listeners set no name.
  mysqlclient sends no connection attributes: nothing there.
- at checkout (``harden``'s checkout listener calls ``tag``, with the code object and
  instruction offset it found for ``holders()``): the comment for the holder and code
  line is one dict lookup (built once per site), kept in the connection's ``Slot``.
- the comment is appended to each statement of the checkout, unless the statement
  has a comment already; each statement's tagged text is built once and looked up
  after that.  The comment is the same text for the same site, so statement caches
  and prepared statements keep working.

Synchronous drivers get it in the driver, below SQLAlchemy: the pool's ``connect``
event gives each new connection a subclass of its own cursor class (psycopg's and
psycopg2's ``cursor_factory``, PyMySQL's and mysqlclient's ``cursorclass``, their
documented extension points; a class per connection, holding its ``Slot``), so
SQLAlchemy, its events, ``echo`` and its statement cache see the statements as
before, and the engine has no connection events it did not have.  There ``%`` are
doubled exactly where the driver reads them: in a statement given parameters.
``executemany`` on PyMySQL and mysqlclient is left alone (they batch an ``INSERT``
only when nothing follows its ``VALUES``); the statements it runs row by row are
tagged.

Async drivers run through SQLAlchemy's own adapters, so there the comment is added
one step above the driver, in the dialect's ``do_execute`` events (and
``do_execute_no_params``, ``do_executemany``): the listener hands the tagged statement
to the dialect's own ``do_execute`` and reports it done, with ``%`` doubled as
SQLAlchemy does for its own text under the ``format`` and ``pyformat`` paramstyles.
As with the sync drivers, SQLAlchemy's connection events and ``echo`` see the
statements as before.  Not ``before_cursor_execute``: any connection event makes
SQLAlchemy dispatch all of them (``begin``, ``before_execute``, ``commit``, ...) on
every transaction, through listener collections joined anew for each ``Connection``,
which cost more than the tagging itself.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .. import _origin
from . import _liveness

logger = logging.getLogger("sessionward.sqlalchemy")

#: The pool entry's ``info`` key of the checkout's ``Comment`` (async drivers).
COMMENT_KEY = "sessionward.origin"
#: The pool entry's ``info`` key of the connection's ``Slot``, read by its cursors.
SLOT_KEY = "sessionward.origin_slot"

_POSTGRESQL_LIBPQ = frozenset({"psycopg", "psycopg2", "psycopg_async"})
_PROGRAM_NAME = frozenset({"pymysql", "aiomysql"})
_MYSQL = frozenset({"pymysql", "mysqldb", "aiomysql", "asyncmy"})
#: Sync drivers: the connection attribute naming the cursor class ``cursor()`` makes.
_CURSOR_CLASS = {
    "psycopg": "cursor_factory",
    "psycopg2": "cursor_factory",
    "pymysql": "cursorclass",
    "mysqldb": "cursorclass",
}
#: Sync drivers: the DBAPI module's name, so a mock DBAPI is handed nothing of ours.
_MODULE = {"psycopg": "psycopg", "psycopg2": "psycopg2", "pymysql": "pymysql"}


class EngineOrigin:
    """The origin of one engine's sessions."""

    def __init__(
        self,
        *,
        name: str,
        driver: str,
        service: str,
        max_bytes: int,
        is_async: bool,
        paramstyle: str,
        warning: type[Warning],
    ) -> None:
        self.name = name
        self.driver = driver
        self.tagger = _origin.Tagger(service, max_bytes)
        #: The holder as a cache key: the thread's name as it is (its counter taken out
        #: once per site), or the task's holder (an unnamed task's counter differs each time).
        self.holder = _origin.task_holder if is_async else _origin.thread_name
        #: Whether the driver reads ``%`` in a statement given parameters.
        self.percent = paramstyle in ("format", "pyformat")
        self.skip_many = driver in _MYSQL
        self.warning = warning
        self.failed = False
        self.in_driver = driver in _CURSOR_CLASS
        #: The engine's dialect, whose own ``do_execute`` runs a tagged statement.
        self.dialect: Any = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "do_connect", self.on_connect)
        if self.in_driver:
            event.listen(engine, "connect", self.on_new_connection)  # a pool event
            return
        # Dialect events: the dialect is the engine's own (and its OptionEngines').
        self.dialect = engine.dialect
        event.listen(engine, "do_execute", self.on_execute)
        event.listen(engine, "do_execute_no_params", self.on_execute_no_params)
        if not self.skip_many:
            event.listen(engine, "do_executemany", self.on_executemany)

    # ----------------------------------------------------------------- connect

    def on_connect(
        self, dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        """Name the session in the connect parameters; the connection is made as before."""
        try:
            module = _MODULE.get(self.driver)
            if module is not None and getattr(dialect.dbapi, "__name__", None) != module:
                return  # a stand-in DBAPI (a mock): it gets the arguments it was given
            name = self.tagger.application_name()
            if self.driver in _POSTGRESQL_LIBPQ:
                _origin.add_libpq_name(cparams, name, cargs)
            elif self.driver == "asyncpg":
                _origin.add_asyncpg_name(cparams, name, cargs)
            elif self.driver in _PROGRAM_NAME:
                _origin.add_program_name(cparams, name)
        except Exception as error:
            self.fail("naming a new connection failed", error)

    def on_new_connection(self, dbapi_connection: Any, record: Any) -> None:
        """Give a new driver connection a cursor class that appends the comment."""
        try:
            if not _liveness.is_driver_connection(self.driver, dbapi_connection):
                return  # a mock or a stand-in: nothing of ours on it
            attribute = _CURSOR_CLASS[self.driver]
            base = getattr(dbapi_connection, attribute)
            percent = True
            if base is None and self.driver == "psycopg2":
                base = importlib.import_module("psycopg2.extensions").cursor
            elif self.driver == "psycopg":
                import psycopg

                # A RawCursor takes $1 placeholders and reads no %.
                percent = not (isinstance(base, type) and issubclass(base, psycopg.RawCursor))
            if isinstance(base, type):
                slot = _origin.Slot()
                made = _origin.tagging_class(
                    base, percent=percent, many=not self.skip_many, slot=slot
                )
                setattr(dbapi_connection, attribute, made)
                record.info[SLOT_KEY] = slot
        except Exception as error:
            self.fail("preparing a new connection failed", error)

    # ----------------------------------------------------------------- checkout

    def tag(
        self,
        dbapi_connection: Any,
        info: dict[str, Any],
        code: Any,
        lasti: int,
        holder: str | None = None,
    ) -> None:
        """Keep the comment for this checkout's holder and code line: one dict lookup.

        ``holder``: the holder as ``self.holder()`` gives it, when the caller has it.
        """
        try:
            key = (id(code), lasti, self.holder() if holder is None else holder)
            comment = self.tagger.cached(key)
            if comment is None:
                comment = self.tagger.remember(key, key[2], self._code_line(code, lasti), code)
            if self.in_driver:
                slot = info.get(SLOT_KEY)
                if slot is not None:
                    slot.comment = comment
            else:
                info[COMMENT_KEY] = comment
        except Exception as error:
            info.pop(COMMENT_KEY, None)
            slot = info.get(SLOT_KEY)
            if slot is not None:
                slot.comment = None
            self.fail("tagging a checkout failed", error)

    def _code_line(self, code: Any, lasti: int) -> str | None:
        if code is None:
            return None
        for start, end, line in code.co_lines():
            if start <= lasti < end:
                return _origin.code_line(code.co_filename, line)
        return _origin.code_line(code.co_filename, None)

    # ----------------------------------------------------------------- statements

    def on_statement(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        """The same as a ``before_cursor_execute`` listener (``retval=True``); ``install``
        uses the dialect's events instead (see the module's docstring)."""
        try:
            comment = conn.info.get(COMMENT_KEY)
            if comment is None or (executemany and self.skip_many):
                return statement, parameters
            doubled = (
                self.percent
                and parameters is not None
                # SQLAlchemy hands the driver no parameters at all only here.
                and (bool(parameters) or context is None or not context.no_parameters)
            )
            return _origin.tagged(statement, comment, doubled), parameters
        except Exception as error:
            self.fail("tagging a statement failed", error)
            return statement, parameters

    def on_execute(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        """``do_execute``: run the statement tagged through the dialect's own ``do_execute``;
        False (SQLAlchemy runs it as it is) when there is nothing to add."""
        try:
            try:  # _comment(context), inlined: this runs for every statement
                comment = context.root_connection.connection.info.get(COMMENT_KEY)
            except NotImplementedError:  # the dialect's first-connect queries
                return False
            # An insertmanyvalues batch comes here: an executemany, as before_cursor_execute
            # was told, left alone where the driver batches an INSERT itself.
            if comment is None or (self.skip_many and context.executemany):
                return False
            # SQLAlchemy hands the driver parameters here (do_execute_no_params: none).
            tagged = _origin.tagged(statement, comment, self.percent and parameters is not None)
        except Exception as error:
            self.fail("tagging a statement failed", error)
            return False
        # Outside the try: the statement's own errors go to SQLAlchemy as they would.
        for listener in self._after_ours("do_execute", self.on_execute):
            if listener(cursor, tagged, parameters, context):
                return True
        self.dialect.do_execute(cursor, tagged, parameters, context)
        return True

    def on_execute_no_params(self, cursor: Any, statement: str, context: Any) -> bool:
        """``do_execute_no_params`` (no parameters: no ``%`` is read)."""
        try:
            comment = _comment(context)
            if comment is None:
                return False
            tagged = _origin.tagged(statement, comment, False)
        except Exception as error:
            self.fail("tagging a statement failed", error)
            return False
        for listener in self._after_ours("do_execute_no_params", self.on_execute_no_params):
            if listener(cursor, tagged, context):
                return True
        self.dialect.do_execute_no_params(cursor, tagged, context)
        return True

    def on_executemany(self, cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        """``do_executemany`` (not on MariaDB/MySQL drivers, see ``skip_many``)."""
        try:
            comment = _comment(context)
            if comment is None:
                return False
            tagged = _origin.tagged(statement, comment, self.percent and parameters is not None)
        except Exception as error:
            self.fail("tagging a statement failed", error)
            return False
        for listener in self._after_ours("do_executemany", self.on_executemany):
            if listener(cursor, tagged, parameters, context):
                return True
        self.dialect.do_executemany(cursor, tagged, parameters, context)
        return True

    def _after_ours(self, name: str, ours: Any) -> list[Any]:
        """The application's ``name`` listeners added after ours.  SQLAlchemy stops at
        the first that returns True, and ours does (it ran the statement): so ours
        calls them first, with the tagged statement, as SQLAlchemy would have."""
        listeners = list(getattr(self.dialect.dispatch, name))
        if len(listeners) == 1:
            return []
        for index, listener in enumerate(listeners):
            if listener == ours:
                return listeners[index + 1 :]
        return []

    # ----------------------------------------------------------------- failing open

    def fail(self, what: str, error: BaseException) -> None:
        """Say once that origins fell short; the connection and statement go on untagged."""
        if self.failed:
            logger.debug("origin: %s", what, exc_info=error)
            return
        self.failed = True
        message = (
            f"sessionward harden() on {self.name}: {what} ({type(error).__name__}: {error}); "
            f"sessions and statements go on without an origin"
        )
        logger.warning("%s", message, exc_info=error)
        try:
            warnings.warn(message, self.warning, stacklevel=2)
        except Exception:  # warnings turned into errors must not break a statement
            logger.debug("origin warning raised as an error and dropped", exc_info=True)


def _comment(context: Any) -> Any:
    """The comment of the checkout a statement runs on, if any."""
    try:
        return context.root_connection.connection.info.get(COMMENT_KEY)
    except NotImplementedError:  # the dialect's first-connect queries: not a checkout
        return None
