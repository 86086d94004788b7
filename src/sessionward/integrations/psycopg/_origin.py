"""Origins for psycopg 3 connections and psycopg_pool: ``service[pid]@host`` at connect,
and for pools a comment naming the holder and code line on each statement."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .. import _origin

logger = logging.getLogger("sessionward.psycopg")


def origin_kwargs(
    kwargs: Mapping[str, Any] | None = None,
    *,
    origin: bool | str = True,
    conninfo: str = "",
) -> dict[str, Any]:
    """``kwargs`` for ``psycopg.connect`` or psycopg_pool, naming each session by its origin.

    Adds libpq's ``fallback_application_name`` = ``service[pid]@host`` (the
    service is ``origin`` when a string, else the program's name), so
    ``sessionward ls`` shows which service, process and host a pooled session
    belongs to, at no extra round trip.  A name you give anywhere wins: in
    ``kwargs`` (``application_name``, or ``options='-c application_name=…'``),
    in ``conninfo`` (pass the pool's, so it is looked at), in ``PGAPPNAME`` or a
    service file.  ``origin=False`` returns a plain copy.

    The pid is this process's: make the pool in the process that uses it.

    >>> origin_kwargs({"application_name": "mine"})
    {'application_name': 'mine'}
    >>> origin_kwargs(origin="billing")["fallback_application_name"].startswith("billing[")
    True
    """
    made = dict(kwargs or {})
    service = _origin.service_for(origin, "origin_kwargs(origin=...)")
    if service is not None:
        name = _origin.Tagger(service, 0).application_name()
        _origin.add_libpq_name(made, name, (conninfo,))
    return made


#: Top-level packages whose frames never took the connection.
_NOT_THE_APPLICATION = frozenset({"psycopg", "psycopg_pool", "contextlib", "sessionward"})


def origin_pool_args(
    *,
    conninfo: str = "",
    kwargs: Mapping[str, Any] | None = None,
    configure: Callable[[Any], None] | None = None,
    check: Callable[[Any], None] | None = None,
    origin: bool | str = True,
    origin_max_bytes: int = _origin.DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """``kwargs``, ``configure`` and ``check`` for ``psycopg_pool.ConnectionPool``: each
    session named ``service[pid]@host`` at connect (see ``origin_kwargs``), and each
    statement of a checkout ending with a sqlcommenter comment naming the thread and the
    code line that took the connection, at no extra round trip::

        pool = ConnectionPool(url, **origin_pool_args(
            conninfo=url, check=ConnectionPool.check_connection))

    Your own ``configure`` and ``check`` run as before (pass them here); the
    ``check`` given to the pool notes who took the connection, then calls yours.
    Statements go through the connection's ``cursor_factory`` (``execute``,
    ``executemany``, ``stream``), extended once your ``configure`` ran; a
    statement with a comment of its own, or that is not a plain string
    (``psycopg.sql.SQL``), is sent as it is.  The synchronous pool only.
    ``origin=False`` returns your arguments unchanged.
    """
    service = _origin.service_for(origin, "origin_pool_args(origin=...)")
    max_bytes = _origin.check_max_bytes(origin_max_bytes, "origin_pool_args(origin_max_bytes=...)")
    args: dict[str, Any] = {"kwargs": origin_kwargs(kwargs, origin=origin, conninfo=conninfo)}
    if service is None:
        args.update(configure=configure, check=check)
        return args
    tagger = _PoolTagger(service, max_bytes)

    def configure_tagging(connection: Any) -> None:
        if configure is not None:
            configure(connection)
        tagger.configure(connection)

    def check_and_note(connection: Any) -> None:
        tagger.note(connection)
        if check is not None:
            check(connection)

    args.update(configure=configure_tagging, check=check_and_note)
    return args


class _PoolTagger:
    def __init__(self, service: str, max_bytes: int) -> None:
        self.tagger = _origin.Tagger(service, max_bytes)
        #: ``id(code)`` -> (the code, whether it is a library's rather than the application's)
        self.internal: dict[int, tuple[Any, bool]] = {}
        self.failed = False

    def configure(self, connection: Any) -> None:
        """Extend the connection's cursor class so its statements carry the comment."""
        try:
            factory = connection.cursor_factory
            if isinstance(factory, type):
                import psycopg

                # A RawCursor takes $1 placeholders and reads no %.
                percent = not issubclass(factory, psycopg.RawCursor)
                # A class of its own, holding the connection's slot: ``note`` finds it
                # there, and its statements read it, with no lookup by connection.
                connection.cursor_factory = _origin.tagging_class(
                    factory, percent=percent, many=True, slot=_origin.Slot()
                )
        except Exception as error:
            self.fail(error)

    def note(self, connection: Any) -> None:
        """Keep the comment for who takes ``connection`` now."""
        slot: _origin.Slot | None = None
        try:
            slot = getattr(connection.cursor_factory, "_sw_slot", None)
            if slot is None:  # not ours (a cursor_factory set after configure): untagged
                return
            frame: Any = sys._getframe(2)
            internal = self.internal
            while frame is not None:
                code = frame.f_code
                # By id (a code object's hash walks its constants), the code kept beside.
                seen = internal.get(id(code))
                if seen is None or seen[0] is not code:
                    top = str(frame.f_globals.get("__name__", "")).partition(".")[0]
                    seen = internal[id(code)] = (code, top in _NOT_THE_APPLICATION)
                if not seen[1]:
                    break
                frame = frame.f_back
            name = _origin.thread_name()
            if frame is None:
                key = (0, -1, name)
                comment = self.tagger.cached(key) or self.tagger.remember(key, name, None)
            else:
                code = frame.f_code
                key = (id(code), frame.f_lasti, name)
                found = self.tagger.cached(key)
                if found is None:
                    line = _origin.code_line(code.co_filename, frame.f_lineno)
                    found = self.tagger.remember(key, name, line, code)
                comment = found
            slot.comment = comment
        except Exception as error:
            if slot is not None:
                slot.comment = None
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        if self.failed:
            logger.debug("origin: tagging a pooled connection failed", exc_info=error)
            return
        self.failed = True
        message = (
            f"sessionward could not tag a pooled connection with its origin "
            f"({type(error).__name__}: {error}); its statements run untagged"
        )
        logger.warning("%s", message, exc_info=error)
        try:
            warnings.warn(message, OriginWarning, stacklevel=3)
        except Exception:  # warnings turned into errors must not break a checkout
            logger.debug("OriginWarning raised as an error and dropped", exc_info=True)


class OriginWarning(RuntimeWarning):
    """A pooled connection could not be tagged with its origin; it is used untagged."""
