"""Django connections for work outside the request cycle: thread pools, commands, scripts.

Django checks a thread's connections only when a request starts and ends
(``close_old_connections``).  ``fresh_connections()`` does that check around
any unit of work, adds a look at the socket so a connection the server ended
is replaced before it is used, and closes the thread's connections after the
unit.  ``ThreadPoolExecutor`` wraps every task in it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import random
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import ContextDecorator, suppress
from typing import Any, ParamSpec, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction  # type: ignore[import-untyped]

from ...core import CommitOutcomeUnknown, ConfigurationError, SessionEnded, classify
from ._liveness import Liveness, liveness

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
P = ParamSpec("P")


class Backoff:
    """Delays between retries: doubling from ``FIRST_SECONDS`` up to ``MAX_SECONDS``, jittered."""

    FIRST_SECONDS = 0.05
    FACTOR = 2.0
    MAX_SECONDS = 2.0
    #: Each delay is drawn from [1 - JITTER, 1] of its nominal value, so workers spread out.
    JITTER = 0.25

    def __init__(self) -> None:
        self._next = self.FIRST_SECONDS

    def delay_seconds(self) -> float:
        """The next delay (and move on).

        >>> b = Backoff()
        >>> [round(b.delay_seconds() / nominal, 2) <= 1 for nominal in (0.05, 0.1, 0.2)]
        [True, True, True]
        """
        nominal = self._next
        self._next = min(self._next * self.FACTOR, self.MAX_SECONDS)
        return nominal * (1 - random.random() * self.JITTER)


def refresh_connection(wrapper: Any) -> bool:
    """Close one Django connection if it is broken, ended by the server or past ``CONN_MAX_AGE``.

    Returns whether it was closed.  A connection inside an ``atomic()`` block
    is left alone: replacing it would silently drop the transaction.
    """
    if wrapper.connection is None or wrapper.in_atomic_block:
        return False
    try:
        # Django's own request-boundary check: autocommit left off, errors, age.
        wrapper.close_if_unusable_or_obsolete()
    except Exception:
        _discard(wrapper)
        return True
    if wrapper.connection is None:
        return True
    state = liveness(wrapper.connection)
    if state is Liveness.QUIET:
        return False
    if state is Liveness.CLOSED or not _usable(wrapper):
        _discard(wrapper)
        return True
    return False


def _usable(wrapper: Any) -> bool:
    try:
        return bool(wrapper.is_usable())
    except Exception:
        return False


def _discard(wrapper: Any) -> None:
    """Close, swallowing the errors a dead connection raises on close."""
    # close() forgets the connection in its ``finally`` even when it raises.
    with suppress(Exception):
        wrapper.close()


def _thread_connections(using: tuple[str, ...] | None) -> list[Any]:
    """This thread's already-opened wrappers (never creates one)."""
    wrappers = connections.all(initialized_only=True)
    if using is None:
        return list(wrappers)
    return [wrapper for wrapper in wrappers if wrapper.alias in using]


class fresh_connections(ContextDecorator):
    """Give a unit of work healthy connections, and close them after it.

    Usable as ``with fresh_connections():`` and as ``@fresh_connections()``.

    - Before the unit, each of this thread's connections that is broken, was
      ended by the server (seen on its socket, without a round trip where the
      driver exposes it) or is past ``CONN_MAX_AGE`` is closed, so Django opens
      a new one on first use.  Autocommit left off by an earlier unit counts as
      broken.
    - After the unit, the thread's connections are closed (``keep=False``, the
      default), or kept if healthy (``keep=True``: the same check as before).
    - ``using``: the aliases to look after (default: all of them) and, for
      ``retry``, the alias whose ``atomic()`` block wraps the unit (default:
      ``default``; with several aliases, the first).
    - ``retry=N`` (decorator only): run the unit inside one ``atomic()`` block
      and, when it fails because the connection ended (``SessionEnded``,
      ``ConnectionLost`` included), rerun the whole block on a new connection,
      up to N more times, with a short backoff.  Only for units the caller
      knows are safe to rerun.  A connection that ends during ``COMMIT`` is
      never retried: ``CommitOutcomeUnknown`` is raised instead.

    Connections inside an enclosing ``atomic()`` block are left alone, and a
    unit nested in one runs once, without retry.
    """

    __module__ = "sessionward.django"  # where users import it from

    def __init__(
        self,
        *,
        using: str | tuple[str, ...] | list[str] | None = None,
        keep: bool = False,
        retry: int = 0,
    ) -> None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ConfigurationError(
                f"fresh_connections(retry=…) takes a count >= 0, not {retry!r}"
            )
        self.using: tuple[str, ...] | None = (
            (using,) if isinstance(using, str) else (tuple(using) if using is not None else None)
        )
        self.keep = keep
        self.retry = retry

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> fresh_connections:
        if self.retry:
            raise ConfigurationError(
                "fresh_connections(retry=…) reruns a function: use it as a decorator"
            )
        self._before()
        return self

    def __exit__(self, *exc: object) -> None:
        self._after()

    # ------------------------------------------------------------------ decorator

    def __call__(self, func: F) -> F:
        if not self.retry:
            wrapped: F = super().__call__(func)
            return wrapped

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            return self._run_with_retry(func, args, kwargs)

        return run  # type: ignore[return-value]

    def _recreate_cm(self) -> fresh_connections:
        # A fresh instance per call, so that recursion and threads never share state.
        return type(self)(using=self.using, keep=self.keep, retry=self.retry)

    # ------------------------------------------------------------------ the steps

    def _atomic_alias(self) -> str:
        return self.using[0] if self.using else DEFAULT_DB_ALIAS

    def _before(self) -> None:
        for wrapper in _thread_connections(self.using):
            refresh_connection(wrapper)

    def _after(self) -> None:
        for wrapper in _thread_connections(self.using):
            if wrapper.in_atomic_block:
                continue  # an enclosing atomic() owns it
            if self.keep:
                refresh_connection(wrapper)
            else:
                _discard(wrapper)

    def _run_with_retry(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        alias = self._atomic_alias()
        if connections[alias].in_atomic_block:
            # The enclosing transaction is not ours to rerun.
            with transaction.atomic(using=alias):
                return func(*args, **kwargs)
        backoff = Backoff()
        attempt = 0
        while True:
            self._before()
            body_done = False
            try:
                with transaction.atomic(using=alias):
                    result = func(*args, **kwargs)
                    body_done = True
                return result
            except Exception as error:
                kind = classify(error)
                ended = kind is not None and issubclass(kind, SessionEnded)
                if ended and body_done:
                    raise CommitOutcomeUnknown(
                        f"the connection ended during COMMIT ({error}); the transaction may "
                        "or may not have been applied, so it was not rerun"
                    ) from error
                if not ended or attempt >= self.retry:
                    raise
                attempt += 1
                # The dead connection goes; the next attempt opens a new one.
                for wrapper in _thread_connections(self.using):
                    if not wrapper.in_atomic_block:
                        refresh_connection(wrapper)
                time.sleep(backoff.delay_seconds())
            finally:
                self._after()


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """``concurrent.futures.ThreadPoolExecutor`` whose tasks get fresh Django connections.

    Every task runs inside ``fresh_connections()``, so a connection broken or
    ended during one task is never handed to the next; the ``initializer``
    runs inside one too and its connections are always closed after it.  With
    ``keep=True`` a worker keeps its healthy connections between tasks (as
    long as ``CONN_MAX_AGE`` allows); ``shutdown()`` then has every worker
    close its own, since Django's connections belong to the thread that
    opened them.  ``shutdown(wait=False)`` queues one close per worker and
    returns; a worker busy for more than a minute may then miss its close.
    """

    __module__ = "sessionward.django"  # where users import it from

    #: How often ``shutdown()`` looks whether every worker has closed its connections.
    SHUTDOWN_POLL_SECONDS = 0.01
    #: With ``shutdown(wait=False)``, how long workers wait for each other to close.
    SHUTDOWN_NOWAIT_SECONDS = 60.0

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        keep: bool = False,
        using: str | tuple[str, ...] | list[str] | None = None,
    ) -> None:
        self._sessionward_fresh = fresh_connections(using=using, keep=keep)
        self._sessionward_workers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._sessionward_futures: weakref.WeakSet[concurrent.futures.Future[Any]] = (
            weakref.WeakSet()
        )
        self._sessionward_lock = threading.Lock()
        super().__init__(
            max_workers,
            thread_name_prefix,
            initializer=functools.partial(self._sessionward_start_worker, initializer),
            initargs=initargs,
        )

    def _sessionward_start_worker(
        self, initializer: Callable[..., object] | None, *initargs: Any
    ) -> None:
        # Registered before its first task, so shutdown() knows whom to ask to close.
        with self._sessionward_lock:
            self._sessionward_workers.add(threading.current_thread())
        if initializer is not None:
            with fresh_connections(using=self._sessionward_fresh.using):
                initializer(*initargs)

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = super().submit(
            self._sessionward_task, fn, *args, **kwargs
        )
        self._sessionward_futures.add(future)
        return future

    def _sessionward_task(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._sessionward_fresh._recreate_cm():
            return fn(*args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            # Ours, not the close tasks below, which must still run.
            for future in list(self._sessionward_futures):
                future.cancel()
        if self._sessionward_fresh.keep:
            self._sessionward_close_workers(wait=wait)
        super().shutdown(wait=wait)

    def _sessionward_close_workers(self, *, wait: bool) -> None:
        """Have each worker close its own connections, once.

        Close tasks queue behind the tasks already submitted; a worker that ran
        one waits until every registered worker has, so it never takes a second.
        """
        using = self._sessionward_fresh.using
        closed: set[threading.Thread] = set()
        all_closed = threading.Event()
        pending: list[concurrent.futures.Future[None]] = []

        def close_own() -> None:
            for wrapper in _thread_connections(using):
                _discard(wrapper)
            with self._sessionward_lock:
                closed.add(threading.current_thread())
            all_closed.wait()

        def remaining() -> int:
            with self._sessionward_lock:
                alive = {thread for thread in self._sessionward_workers if thread.is_alive()}
            return len(alive - closed)

        def queue_closes() -> None:
            queued = sum(1 for future in pending if not (future.running() or future.done()))
            for _ in range(remaining() - queued):
                pending.append(concurrent.futures.ThreadPoolExecutor.submit(self, close_own))

        if not wait:
            # No waiting here: a watcher releases the workers once each has closed.
            queue_closes()

            def watch() -> None:
                deadline = time.monotonic() + self.SHUTDOWN_NOWAIT_SECONDS
                while remaining() and time.monotonic() < deadline:
                    time.sleep(self.SHUTDOWN_POLL_SECONDS)
                all_closed.set()

            threading.Thread(target=watch, name="sessionward-shutdown", daemon=True).start()
            return
        try:
            queue_closes()
            while remaining():
                time.sleep(self.SHUTDOWN_POLL_SECONDS)
                queue_closes()
        finally:
            all_closed.set()
