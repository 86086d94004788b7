"""The client side of origins, shared by the SQLAlchemy, Django and psycopg integrations.

What a session says about itself, at no extra round trip:

- at connect, ``service[pid]@host``: PostgreSQL's ``application_name`` (sent as
  libpq's ``fallback_application_name``, so any name the user gives, also
  through ``PGAPPNAME`` or a service file, wins), PyMySQL's and aiomysql's
  ``program_name`` connection attribute;
- on each statement, a sqlcommenter comment with the holder (thread or
  asyncio task) and the code line (see ``sessionward.core.encode_comment``).

The comment must be the same text for the same site, or statement caches and
prepared statements would see a new statement each time: Python's automatic
counters in thread and task names (``Thread-12 (work)``, ``Task-3``) are left
out, and a task without a name of its own is named by its coroutine.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import threading
import weakref
from collections.abc import Mapping, MutableMapping
from typing import Any

from ..core import ConfigurationError, Origin, application_name_for, encode_comment, with_comment

#: The default cap on a statement comment, in bytes.
DEFAULT_MAX_BYTES = 512
#: Caches of names and paths are emptied when they grow past this many entries.
_MAX_CACHED = 4096

#: ``Thread-12``, ``Thread-12 (target)``, ``Dummy-3``, ``Task-7``: Python's counters.
_COUNTER = re.compile(r"\A(Thread|Dummy|Task)-[0-9]+(?= \(|\Z)")
_holder_names: dict[str, str] = {}
_short_paths: dict[str, str] = {}

#: This process's pid; a fork learns its own (``register_at_fork``).
_pid = [os.getpid()]


def _forked() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    return _pid[0]


def default_service() -> str:
    """The program's name: ``sys.argv[0]``'s file name; a package's for ``python -m pkg``.

    >>> isinstance(default_service(), str) and default_service() != ""
    True
    """
    argv0 = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""
    name = os.path.basename(argv0)
    if name == "__main__.py":
        name = os.path.basename(os.path.dirname(argv0))
    if not name or name == "-c":
        return "python"
    return name


def service_for(origin: object, where: str) -> str | None:
    """The service an ``origin=`` value names: ``None`` when origins are off.

    >>> service_for("billing", "harden(origin=...)"), service_for(False, "x")
    ('billing', None)
    """
    if origin is True:
        return default_service()
    if origin is False or origin is None:
        return None
    if isinstance(origin, str) and origin.strip():
        return origin
    raise ConfigurationError(
        f"{where} is True, False or a service name (a non-empty string), not {origin!r}"
    )


def check_max_bytes(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{where} is a number of bytes >= 0, not {value!r}")
    return value


def host_name() -> str:
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


def holder_name(name: str) -> str:
    """A thread's or task's name without Python's automatic counter.

    >>> holder_name("Thread-12 (serve)"), holder_name("Task-3"), holder_name("worker-3")
    ('Thread (serve)', 'Task', 'worker-3')
    """
    found = _holder_names.get(name)
    if found is None:
        if len(_holder_names) > _MAX_CACHED:
            _holder_names.clear()
        found = _holder_names[name] = _COUNTER.sub(r"\1", name)
    return found


def thread_holder() -> str:
    return holder_name(threading.current_thread().name)


def task_holder() -> str:
    """The running asyncio task (by its coroutine when it has no name of its own), else
    the thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        task = None
    if task is None:
        return thread_holder()
    name = task.get_name()
    short = holder_name(name)
    if short == "Task":
        coro = task.get_coro()
        qualname = getattr(coro, "__qualname__", None)
        if not isinstance(qualname, str):
            return short
        return f"Task ({qualname.rpartition('<locals>.')[2]})"
    return short


def short_path(filename: str) -> str:
    """``filename`` relative to the deepest ``sys.path`` entry holding it: its module path.

    >>> short_path(os.path.join(sys.path[-1] or os.getcwd(), "pkg", "mod.py"))
    'pkg/mod.py'
    """
    found = _short_paths.get(filename)
    if found is not None:
        return found
    best = ""
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        base = os.path.abspath(entry or os.getcwd())
        prefix = base if base.endswith(os.sep) else base + os.sep
        if filename.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    found = filename[len(best) :].replace(os.sep, "/") if best else filename
    if len(_short_paths) > _MAX_CACHED:
        _short_paths.clear()
    _short_paths[filename] = found
    return found


def code_line(filename: str, line: int | None) -> str:
    """``path:line`` as the comment carries it."""
    return f"{short_path(filename)}:{line if line is not None else '?'}"


class Tagger:
    """The comments of one engine or connection: service and host are fixed, the pid
    follows forks, the holder and code line vary; each comment is built once."""

    __slots__ = ("_cache", "_pid", "host", "max_bytes", "service")

    def __init__(self, service: str, max_bytes: int, host: str | None = None) -> None:
        self.service = service
        self.max_bytes = max_bytes
        self.host = host if host is not None else host_name()
        self._pid = current_pid()
        #: (holder, code) -> (comment, the comment with ``%`` doubled)
        self._cache: dict[tuple[Any, ...], tuple[str, str]] = {}

    def application_name(self) -> str:
        """``service[pid]@host``, at most 63 bytes."""
        return application_name_for(self.service, current_pid(), self.host)

    def cached(self, key: tuple[Any, ...]) -> tuple[str, str] | None:
        if self._pid != _pid[0]:  # forked: the pid in every comment changed
            self._pid = _pid[0]
            self._cache.clear()
        return self._cache.get(key)

    def remember(self, key: tuple[Any, ...], holder: str, code: str | None) -> tuple[str, str]:
        comment = encode_comment(
            Origin(service=self.service, host=self.host, pid=self._pid, holder=holder, code=code),
            max_bytes=self.max_bytes,
        )
        pair = (comment, comment.replace("%", "%%"))
        if len(self._cache) > _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = pair
        return pair


# --------------------------------------------------------------------------- connect


def names_itself(params: Mapping[str, Any], args: Any = ()) -> bool:
    """Whether libpq connection parameters already name the application.

    ``options='-c application_name=...'`` counts too: libpq's fallback name,
    sent as a parameter of its own, would win over it.

    >>> names_itself({"options": "-c application_name=x"}), names_itself({"dbname": "x"})
    (True, False)
    """
    if "application_name" in params or "fallback_application_name" in params:
        return True
    texts = [value for value in params.values() if isinstance(value, str)]
    texts.extend(value for value in args if isinstance(value, str))
    return any("application_name" in text for text in texts)


def add_libpq_name(params: MutableMapping[str, Any], name: str, args: Any = ()) -> bool:
    """Add ``fallback_application_name`` unless the parameters name the application."""
    if names_itself(params, args):
        return False
    params["fallback_application_name"] = name
    return True


def add_asyncpg_name(params: MutableMapping[str, Any], name: str, args: Any = ()) -> bool:
    """asyncpg: ``application_name`` in a copy of ``server_settings``, unless one is set."""
    settings = params.get("server_settings")
    if isinstance(settings, Mapping) and "application_name" in settings:
        return False
    if any(isinstance(value, str) and "application_name" in value for value in args):
        return False
    if isinstance(params.get("dsn"), str) and "application_name" in params["dsn"]:
        return False
    params["server_settings"] = {**(settings or {}), "application_name": name}
    return True


def add_program_name(params: MutableMapping[str, Any], name: str) -> bool:
    """PyMySQL and aiomysql: the ``program_name`` connection attribute, unless set."""
    if params.get("program_name"):
        return False
    params["program_name"] = name
    return True


# --------------------------------------------------------------------------- cursors

#: The comment of each DBAPI connection's current holder: ``(comment, with %% doubled)``,
#: set at checkout, or a function that works it out for each statement (Django's
#: engines, which have no checkout); read by the tagging cursor classes below.
comments: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: The keyword names drivers give a statement's parameters.
_PARAMETER_KEYWORDS = ("params", "vars", "args", "parameters")
_tagging_classes: dict[tuple[type, bool, bool], type] = {}


def tagged(cursor: Any, query: Any, with_params: bool) -> Any:
    """``query`` with the comment of ``cursor``'s connection, ``%`` doubled where the
    driver reads them (a statement with parameters, on a cursor that reads ``%``)."""
    if not isinstance(query, str):
        return query
    try:
        pair = comments.get(cursor.connection)
        if pair is None:
            return query
        if callable(pair):
            pair = pair()
        doubled = with_params and cursor._sw_percent
        return with_comment(query, pair[1] if doubled else pair[0])
    except Exception:  # never turn a statement into an error
        return query


def _given(params: Any, kwargs: Mapping[str, Any]) -> bool:
    return params is not None or any(kwargs.get(k) is not None for k in _PARAMETER_KEYWORDS)


class _TagExecute:
    _sw_percent = True

    def execute(self, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        parent: Any = super()
        query = tagged(self, query, _given(params, kwargs))
        if params is None:  # as the caller called it: drivers name the argument differently
            return parent.execute(query, *args, **kwargs)
        return parent.execute(query, params, *args, **kwargs)


class _TagExecuteMany:
    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        parent: Any = super()
        return parent.executemany(tagged(self, query, True), *args, **kwargs)


class _TagStream:
    def stream(self, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        parent: Any = super()
        query = tagged(self, query, _given(params, kwargs))
        if params is None:
            return parent.stream(query, *args, **kwargs)
        return parent.stream(query, params, *args, **kwargs)


def tagging_class(base: type, *, percent: bool, many: bool) -> type:
    """A subclass of the driver's cursor class ``base`` whose statements end with the
    connection's comment (``comments``); ``many``: ``executemany`` too (not for
    PyMySQL and mysqlclient, which batch an ``INSERT`` only when nothing follows its
    ``VALUES``; their rows still go through ``execute``)."""
    if issubclass(base, _TagExecute):
        return base
    key = (base, percent, many)
    made = _tagging_classes.get(key)
    if made is None:
        mixins: list[type] = [_TagExecute]
        if many and hasattr(base, "executemany"):
            mixins.append(_TagExecuteMany)
        if hasattr(base, "stream"):
            mixins.append(_TagStream)
        made = type(base.__name__, (*mixins, base), {"_sw_percent": percent})
        made.__qualname__ = base.__qualname__
        made.__module__ = base.__module__
        _tagging_classes[key] = made
    return made
