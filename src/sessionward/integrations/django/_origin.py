"""Origins for sessionward's Django engines: ``OPTIONS["origin"]``.

- At connect, ``service[pid]@host``: PostgreSQL's application name (libpq's
  ``fallback_application_name``, so a name from ``OPTIONS``, ``PGAPPNAME`` or a
  service file wins) and PyMySQL's ``program_name`` connection attribute.
- On each statement, a sqlcommenter comment naming the thread and the first code
  line outside Django and sessionward that ran it, appended in the driver: Django's
  cursors (``create_cursor``) are made with a subclass of the connection's cursor
  class (psycopg's ``cursor_factory``, mysqlclient's and PyMySQL's ``cursorclass``,
  set back right after), so Django's ``execute_wrappers`` see the statements as
  before, and ``last_executed_query`` (``connection.queries``) reports them without
  the comment.  ``%`` are doubled
  only in statements given parameters, where the driver reads them; PyMySQL's and
  mysqlclient's ``executemany`` is left alone (they batch an ``INSERT`` only when
  nothing follows its ``VALUES``).

``OPTIONS["origin"]``: ``True`` (the default: the service is the program's
name), a service name, or ``False`` for nothing; ``OPTIONS["origin_max_bytes"]``
caps the comment (512).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from .. import _origin

logger = logging.getLogger("sessionward.django")

#: ``OPTIONS`` keys read (and removed) by the engines.
ORIGIN_KEY = "origin"
ORIGIN_MAX_BYTES_KEY = "origin_max_bytes"
#: Modules whose frames never ran the statement as far as the application is concerned.
_NOT_THE_APPLICATION = ("django.", "sessionward.")
_getframe = sys._getframe
#: The driver connection's attribute naming the cursor class ``cursor()`` makes.
_CURSOR_CLASS = {
    "psycopg": "cursor_factory",
    "psycopg2": "cursor_factory",
    "pymysql": "cursorclass",
    "MySQLdb": "cursorclass",
}


class OriginWarning(RuntimeWarning):
    """The engine could not name a statement's origin; the statement ran untagged."""


def settings_of(options: Mapping[str, Any]) -> tuple[str | None, int]:
    """The service (``None``: off) and comment cap ``OPTIONS`` ask for; raises
    ``ConfigurationError`` for a bad value."""
    service = _origin.service_for(options.get(ORIGIN_KEY, True), f'OPTIONS["{ORIGIN_KEY}"]')
    max_bytes = _origin.check_max_bytes(
        options.get(ORIGIN_MAX_BYTES_KEY, _origin.DEFAULT_MAX_BYTES),
        f'OPTIONS["{ORIGIN_MAX_BYTES_KEY}"]',
    )
    return service, max_bytes


def name_connection(params: dict[str, Any], service: str, vendor: str, driver: str) -> None:
    """Add the session's name to Django's connection parameters, unless they name it."""
    name = _origin.Tagger(service, 0).application_name()
    if vendor == "postgresql":
        _origin.add_libpq_name(params, name)
    elif driver == "pymysql":
        # A connection attribute; mysqlclient takes none.
        _origin.add_program_name(params, name)


class StatementOrigin:
    """The origin comment of one engine's statements, worked out for each statement."""

    def __init__(self, service: str, max_bytes: int) -> None:
        self.tagger = _origin.Tagger(service, max_bytes)
        self.failed = False
        #: ``id(code)`` -> (the code, whether it is Django's or ours rather than the app's)
        self._internal: dict[int, tuple[Any, bool]] = {}
        #: Read by this engine's cursors: the comment is worked out for each statement.
        self._slot = _origin.Slot(compute=self.comment)
        #: ``(cursor class, percent, many)`` -> its tagging subclass for this engine.
        self._classes: dict[tuple[type, bool, bool], type] = {}

    @contextlib.contextmanager
    def tagging(self, connection: Any, driver: str) -> Iterator[None]:
        """While a cursor is made: the connection's cursor class is a subclass of its
        own that appends the comment."""
        attribute = _CURSOR_CLASS.get(driver)
        original: Any = None
        swapped = False
        try:
            if attribute is not None:
                original = getattr(connection, attribute)
                base = original
                percent = True
                if base is None and driver == "psycopg2":
                    base = importlib.import_module("psycopg2.extensions").cursor
                elif driver == "psycopg":
                    raw = importlib.import_module("psycopg").RawCursor
                    percent = not (isinstance(base, type) and issubclass(base, raw))
                if isinstance(base, type):
                    many = driver in ("psycopg", "psycopg2")
                    key = (base, percent, many)
                    made = self._classes.get(key)
                    if made is None:
                        made = self._classes[key] = _origin.tagging_class(
                            base, percent=percent, many=many, slot=self._slot
                        )
                    setattr(connection, attribute, made)
                    swapped = True
        except Exception as error:
            self._fail(error)
        try:
            yield
        finally:
            if swapped:
                setattr(connection, attribute, original)  # type: ignore[arg-type]

    def comment(self) -> _origin.Comment | None:
        """The comment for the statement being sent: the thread, and the first code line
        outside Django and sessionward."""
        try:
            frame: Any = _getframe(1)
            internal = self._internal
            while frame is not None:
                code = frame.f_code
                # By id (a code object's hash walks its constants), the code kept beside.
                seen = internal.get(id(code))
                if seen is None or seen[0] is not code:
                    module = str(frame.f_globals.get("__name__", ""))
                    seen = internal[id(code)] = (code, module.startswith(_NOT_THE_APPLICATION))
                if not seen[1]:
                    break
                frame = frame.f_back
            name = _origin.thread_name()
            if frame is None:
                key = (0, -1, name)
                return self.tagger.cached(key) or self.tagger.remember(key, name, None)
            code = frame.f_code
            key = (id(code), frame.f_lasti, name)
            found = self.tagger.cached(key)
            if found is None:
                line = _origin.code_line(code.co_filename, frame.f_lineno)
                found = self.tagger.remember(key, name, line, code)
            return found
        except Exception as error:
            self._fail(error)
            return None

    def _fail(self, error: BaseException) -> None:
        if self.failed:
            logger.debug("origin: tagging a statement failed", exc_info=error)
            return
        self.failed = True
        message = (
            f"sessionward's Django engine could not tag a statement with its origin "
            f"({type(error).__name__}: {error}); statements run untagged"
        )
        logger.warning("%s", message, exc_info=error)
        try:
            warnings.warn(message, OriginWarning, stacklevel=3)
        except Exception:  # warnings turned into errors must not break a statement
            logger.debug("OriginWarning raised as an error and dropped", exc_info=True)


def statement_origin(options: Mapping[str, Any]) -> StatementOrigin | None:
    """The statement origin ``OPTIONS`` ask for, if any (a bad value: none; the
    connection parameters then raise ``ConfigurationError``)."""
    try:
        service, max_bytes = settings_of(options)
    except Exception:
        return None
    if service is None:
        return None
    return StatementOrigin(service, max_bytes)


def without_comment(executed: Any, sql: Any) -> Any:
    """``executed`` (what the driver says it sent for ``sql``) without our comment.

    >>> without_comment("SELECT 1 /*sw_pid='1'*/", "SELECT %s")
    'SELECT 1'
    >>> without_comment("SELECT 1 /*sw_pid='1'*/;", "SELECT 1;")
    'SELECT 1;'
    >>> without_comment("SELECT 1 /*sw_pid='1'*/", "SELECT 1 /*sw_pid='1'*/")
    "SELECT 1 /*sw_pid='1'*/"
    """
    if not isinstance(executed, str) or not isinstance(sql, str) or "/*" in sql or "--" in sql:
        return executed  # a statement with a comment of its own was sent as it was
    start = executed.rfind(" /*sw_")
    if start < 0:
        return executed
    end = executed.find("*/", start)
    if end < 0 or executed[end + 2 :] not in ("", ";"):
        return executed
    return executed[:start] + executed[end + 2 :]


class OriginOperationsMixin:
    """``last_executed_query`` without the origin comment, as before the engine added it."""

    def last_executed_query(self, cursor: Any, sql: Any, params: Any) -> Any:
        base: Any = super()
        return without_comment(base.last_executed_query(cursor, sql, params), sql)
