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

What it costs, at most a few hundred nanoseconds: a checkout looks its comment
up by ``(id(code), offset, thread name)`` (``Tagger``) and puts it in the
connection's ``Slot``; a statement finds the slot as a class attribute of its
cursor (a cursor class per connection) and its tagged text by ``(statement,
comment)`` (``tagged``).  Everything is built once per site and statement.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
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

_current_thread = threading.current_thread

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


def thread_name() -> str:
    """The current thread's name as it is: a cache key (``holder_name`` applies once)."""
    return _current_thread().name


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
    follows forks, the holder and code line vary; each comment is built once.

    Keys are ``(id(code), instruction offset, holder name)``: an ``id`` and a string
    hash at once, where a code object's hash walks its constants each time; the
    ``Comment`` keeps the code object alive, so its ``id`` is not reused meanwhile.
    """

    __slots__ = ("_cache", "_pid", "host", "max_bytes", "service")

    def __init__(self, service: str, max_bytes: int, host: str | None = None) -> None:
        self.service = service
        self.max_bytes = max_bytes
        self.host = host if host is not None else host_name()
        self._pid = current_pid()
        self._cache: dict[tuple[int, int, str], Comment] = {}

    def application_name(self) -> str:
        """``service[pid]@host``, at most 63 bytes."""
        return application_name_for(self.service, current_pid(), self.host)

    def cached(self, key: tuple[int, int, str]) -> Comment | None:
        if self._pid != _pid[0]:  # forked: the pid in every comment changed
            self._pid = _pid[0]
            self._cache.clear()
        return self._cache.get(key)

    def remember(
        self, key: tuple[int, int, str], holder: str, code: str | None, site: object = None
    ) -> Comment:
        """Build the comment of ``key``: ``holder`` without Python's counters, ``code``
        the code line; ``site`` the code object whose ``id`` is in ``key``."""
        text = encode_comment(
            Origin(
                service=self.service,
                host=self.host,
                pid=self._pid,
                holder=holder_name(holder),
                code=code,
            ),
            max_bytes=self.max_bytes,
        )
        comment = Comment(text, site)
        if len(self._cache) > _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = comment
        return comment


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

#: Longest statement whose tagged text is kept (longer ones are tagged each time), and
#: how many are kept: a few MB at most, usually the same strings SQLAlchemy caches.
_MAX_CACHED_STATEMENT_CHARS = 2048
_MAX_TAGGED_STATEMENTS = 1024
#: ``(statement, comment) -> statement with the comment``: each built once, so a
#: statement of a checkout costs one dict lookup; the same (cached) text for the
#: same site, which statement caches need anyway.
_tagged_statements: dict[tuple[str, str], str] = {}


class Comment:
    """One site's comment as it is sent, plain and with ``%`` doubled (for a driver that
    reads ``%`` in a statement given parameters); ``site`` keeps the code object whose
    ``id`` is part of the cache key alive, so the ``id`` is not reused meanwhile."""

    __slots__ = ("doubled", "site", "text")

    def __init__(self, text: str, site: object = None) -> None:
        self.text = text
        self.doubled = text.replace("%", "%%")
        self.site = site


def tagged(query: Any, comment: Comment, doubled: bool) -> Any:
    """``query`` with ``comment`` (``%`` doubled when ``doubled``), built once per pair.

    >>> c = Comment("/*sw_code='a.py%3A1'*/")
    >>> tagged("SELECT %s", c, True), tagged("SELECT 1 -- mine", c, False)
    ("SELECT %s /*sw_code='a.py%%3A1'*/", 'SELECT 1 -- mine')
    >>> tagged("SELECT %s", c, True) is tagged("SELECT %s", c, True), tagged(b"SELECT 1", c, False)
    (True, b'SELECT 1')
    """
    text = comment.doubled if doubled else comment.text
    try:
        return _tagged_statements[query, text]
    except KeyError:
        return _tag(query, text)
    except Exception:  # unhashable (psycopg's sql.Composed) or odd: sent as it is
        return query


def _tag(query: Any, text: str) -> Any:
    """``query`` with the comment ``text``, kept for next time when short enough."""
    if type(query) is not str:  # bytes, a str subclass with a meaning of its own: as it is
        return query
    made = with_comment(query, text)
    if len(query) <= _MAX_CACHED_STATEMENT_CHARS:
        if len(_tagged_statements) >= _MAX_TAGGED_STATEMENTS:
            _tagged_statements.clear()
        _tagged_statements[query, text] = made
    return made


class Slot:
    """The comment of one connection's current holder, read by its cursors' statements:
    ``comment``, set at checkout, or ``compute``, called for each statement (Django's
    engines, which have no checkout)."""

    __slots__ = ("comment", "compute")

    def __init__(self, compute: Callable[[], Comment | None] | None = None) -> None:
        self.comment: Comment | None = None
        self.compute = compute


#: The keyword names drivers give a statement's parameters.
_PARAMETER_KEYWORDS = ("params", "vars", "args", "parameters")
#: ``(cursor class, percent, many)`` -> its tagging subclass, shared by connections.
_tagging_classes: dict[tuple[type, bool, bool], type] = {}


def _given(kwargs: Mapping[str, Any]) -> bool:
    return any(kwargs.get(k) is not None for k in _PARAMETER_KEYWORDS)


def _comment_of(cursor: Any) -> Comment | None:
    slot: Slot = cursor._sw_slot
    comment = slot.comment
    if comment is None and slot.compute is not None:
        comment = slot.compute()
    return comment


def _methods(base: type, many: bool) -> dict[str, Any]:
    """``execute`` (and ``executemany``, ``stream``) calling ``base``'s own directly,
    looked up at each call as ``super()`` would (instrumentation may wrap it later), so a
    statement costs its comment's lookup, nothing more."""
    driver: Any = base

    def execute(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        # Runs for every statement: ``_comment_of`` and ``tagged``'s lookup inlined.
        slot: Slot = self._sw_slot
        comment = slot.comment
        if comment is None and slot.compute is not None:
            comment = slot.compute()
        if comment is not None:
            given = params is not None or (bool(kwargs) and _given(kwargs))
            text = comment.doubled if given and self._sw_percent else comment.text
            try:
                query = _tagged_statements[query, text]
            except KeyError:
                query = _tag(query, text)
            except Exception:  # unhashable (psycopg's sql.Composed) or odd: sent as it is
                pass
        # As the caller called it: drivers name the argument differently.
        if args or kwargs:
            if params is None:
                return driver.execute(self, query, *args, **kwargs)
            return driver.execute(self, query, params, *args, **kwargs)
        if params is None:
            return driver.execute(self, query)
        return driver.execute(self, query, params)

    methods: dict[str, Any] = {"execute": execute}
    if many and hasattr(base, "executemany"):

        def executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            comment = _comment_of(self)
            if comment is not None:
                query = tagged(query, comment, self._sw_percent)
            return driver.executemany(self, query, *args, **kwargs)

        methods["executemany"] = executemany
    if hasattr(base, "stream"):

        def stream(self: Any, query: Any, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            comment = _comment_of(self)
            if comment is not None:
                given = params is not None or (bool(kwargs) and _given(kwargs))
                query = tagged(query, comment, given and self._sw_percent)
            if params is None:
                return driver.stream(self, query, *args, **kwargs)
            return driver.stream(self, query, params, *args, **kwargs)

        methods["stream"] = stream
    return methods


class _Tagging:
    """The mark of a tagging cursor class; ``_sw_slot`` is its connection's slot."""

    _sw_slot = Slot()
    _sw_percent = True
    _sw_shared: type


def tagging_class(base: type, *, percent: bool, many: bool, slot: Slot) -> type:
    """A subclass of the driver's cursor class ``base`` whose statements end with
    ``slot``'s comment, for one connection (or, for Django, one engine): a class per
    slot, so a statement finds its comment by an attribute, with no lookup by connection.
    ``percent``: the driver reads ``%`` in a statement given parameters; ``many``:
    ``executemany`` too (not for PyMySQL and mysqlclient, which batch an ``INSERT``
    only when nothing follows its ``VALUES``; their rows still go through ``execute``).
    """
    if issubclass(base, _Tagging):
        base = base._sw_shared.__bases__[-1]
    key = (base, percent, many)
    shared = _tagging_classes.get(key)
    if shared is None:
        namespace = {**_methods(base, many), "_sw_percent": percent}
        shared = type(base.__name__, (_Tagging, base), namespace)
        shared._sw_shared = shared  # type: ignore[attr-defined]
        shared.__qualname__ = base.__qualname__
        shared.__module__ = base.__module__
        _tagging_classes[key] = shared
    made = type(base.__name__, (shared,), {"_sw_slot": slot})
    made.__qualname__ = base.__qualname__
    made.__module__ = base.__module__
    return made
