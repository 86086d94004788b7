"""Harden by configuration: a SQLAlchemy ``CreateEnginePlugin`` named ``sessionward``.

``create_engine(url, plugins=["sessionward"])`` or ``…?plugin=sessionward``
calls ``harden()`` on the engine once it is made, for code that only holds a
URL (Alembic's ``env.py``, Flask-SQLAlchemy, Airflow connections).  Options
come as ``sessionward_*`` URL query parameters or ``create_engine`` keyword
arguments, are taken out of both so neither the driver nor ``create_engine``
sees them, and are checked before the engine is made: a bad one is one
``ConfigurationError`` naming what is accepted, and no engine comes back.

With ``sessionward_skip_rollback_after_commit=true``, on PyMySQL and
mysqlclient, the plugin also makes the pool without its own reset on return
(unless ``pool_reset_on_return`` is given) and resets through pool events,
leaving out the ``ROLLBACK`` after a commit: see ``_reset``.

>>> options = _options({"sessionward_liveness": "ping", "sessionward_hold_warning": "2m"})
>>> options["liveness"], options["hold_warning_seconds"]
('ping', 120.0)
>>> _options({"sessionward_statement_timeout": "30s"})["timeouts"].statement_seconds
30.0
>>> _options({"sessionward_colour": "blue"})
Traceback (most recent call last):
...
sessionward.core._errors.ConfigurationError: unknown sessionward option 'sessionward_colour'; \
the options are sessionward_capture_stacks, ...
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import URL, CreateEnginePlugin, Engine

from ...core import ConfigurationError, Timeouts, parse_duration
from ...core._timeouts import MAX_KEEPALIVE_PROBES as MAX_PROBES
from . import _reset
from ._harden import (
    FallbackWarning,
    _states,
    check_arguments,
    check_driver,
    harden,
)

logger = logging.getLogger("sessionward.sqlalchemy")

PREFIX = "sessionward_"


def _duration(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} is a duration such as 30s or 5m, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigurationError:
            pass
    raise ConfigurationError(f"{name} is a duration such as 30s or 5m, not {value!r}")


def _positive_duration(name: str, value: Any) -> float:
    seconds = _duration(name, value)
    if seconds <= 0:
        raise ConfigurationError(f"{name} is a duration > 0 such as 30s or 5m, not {value!r}")
    return seconds


def _switch(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(f"{name} is true or false, not {value!r}")


def _liveness(name: str, value: Any) -> str:
    if value in ("auto", "ping", "off"):
        return str(value)
    raise ConfigurationError(f"{name} is auto, ping or off, not {value!r}")


def _recycle(name: str, value: Any) -> float | str | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if value == "auto":
        return "auto"
    try:
        return _positive_duration(name, value)
    except ConfigurationError:
        raise ConfigurationError(
            f"{name} is auto, none or a duration such as 1h, not {value!r}"
        ) from None


def _probes(name: str, value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PROBES:
        return value
    raise ConfigurationError(f"{name} is a whole number from 1 to {MAX_PROBES}, not {value!r}")


def _origin(name: str, value: Any) -> bool | str:
    """true/false, or a service name."""
    if isinstance(value, str) and value.lower() in (
        "true",
        "1",
        "yes",
        "on",
        "false",
        "0",
        "no",
        "off",
    ):
        return _switch(name, value)
    if isinstance(value, bool) or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigurationError(f"{name} is true, false or a service name, not {value!r}")


def _bytes(name: str, value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigurationError(f"{name} is a number of bytes >= 0, not {value!r}")


#: Option (after the prefix) -> (harden() argument, parser).
_HARDEN_OPTIONS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "liveness": ("liveness", _liveness),
    "recycle": ("recycle", _recycle),
    "ping_after_idle": ("ping_after_idle_seconds", _positive_duration),
    "hold_warning": ("hold_warning_seconds", _positive_duration),
    "track_leaks": ("track_leaks", _switch),
    "capture_stacks": ("capture_stacks", _switch),
    "check_threads": ("check_threads", _switch),
    "origin": ("origin", _origin),
    "origin_max_bytes": ("origin_max_bytes", _bytes),
}
#: Option (after the prefix) -> (``Timeouts`` field, parser).
_TIMEOUT_OPTIONS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "statement_timeout": ("statement_seconds", _duration),
    "lock_timeout": ("lock_seconds", _duration),
    "idle_in_transaction_timeout": ("idle_in_transaction_seconds", _duration),
    "idle_session_timeout": ("idle_session_seconds", _duration),
    "transaction_timeout": ("transaction_seconds", _duration),
    "connect_timeout": ("connect_seconds", _duration),
    "keepalive_idle": ("keepalive_idle_seconds", _duration),
    "keepalive_interval": ("keepalive_interval_seconds", _duration),
    "max_keepalive_probes": ("max_keepalive_probes", _probes),
    "tcp_user_timeout": ("tcp_user_timeout_seconds", _duration),
}
#: Not a ``harden()`` argument: the pool's reset, which only the plugin can set.
SKIP_ROLLBACK = PREFIX + "skip_rollback_after_commit"
OPTIONS = tuple(
    sorted([SKIP_ROLLBACK, *(PREFIX + name for name in (*_HARDEN_OPTIONS, *_TIMEOUT_OPTIONS))])
)


def _options(given: Mapping[str, Any]) -> dict[str, Any]:
    """``harden()``'s keyword arguments from ``sessionward_*`` options, checked."""
    arguments: dict[str, Any] = {}
    timeouts: dict[str, Any] = {}
    for name, value in given.items():
        option = name[len(PREFIX) :]
        if isinstance(value, tuple):
            raise ConfigurationError(f"{name} is given {len(value)} times; give it once")
        if option in _HARDEN_OPTIONS:
            argument, parse = _HARDEN_OPTIONS[option]
            arguments[argument] = parse(name, value)
        elif option in _TIMEOUT_OPTIONS:
            field, parse = _TIMEOUT_OPTIONS[option]
            timeouts[field] = parse(name, value)
        else:
            raise ConfigurationError(
                f"unknown sessionward option {name!r}; the options are {', '.join(OPTIONS)}"
            )
    check_arguments(
        liveness=arguments.get("liveness", "auto"),
        recycle=arguments.get("recycle", "auto"),
        ping_after_idle_seconds=arguments.get("ping_after_idle_seconds", 1.0),
        hold_warning_seconds=arguments.get("hold_warning_seconds", 1.0),
    )
    if timeouts:
        arguments["timeouts"] = Timeouts(**timeouts)
    return arguments


class SessionwardPlugin(CreateEnginePlugin):
    """``harden()`` each engine made with ``plugins=["sessionward"]`` or ``?plugin=sessionward``."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        given: dict[str, Any] = {
            name: value for name, value in url.query.items() if name.startswith(PREFIX)
        }
        for name in [name for name in kwargs if name.startswith(PREFIX)]:
            if name in given:
                raise ConfigurationError(f"{name} is given both in the URL and as an argument")
            given[name] = kwargs.pop(name)
        self._names = list(given)
        skip = given.pop(SKIP_ROLLBACK, False)
        if isinstance(skip, tuple):
            raise ConfigurationError(f"{SKIP_ROLLBACK} is given {len(skip)} times; give it once")
        self._skip_rollback = _switch(SKIP_ROLLBACK, skip)
        self._arguments = _options(given)
        dialect = url.get_dialect()
        self._driver = getattr(dialect, "driver", "")
        check_driver(self._driver, bool(getattr(dialect, "is_async", False)), url.drivername)
        #: Whether this plugin set the pool's ``reset_on_return`` (see ``_reset``).
        self._owns_reset = False

    def handle_pool_kwargs(self, pool_cls: type, pool_args: dict[str, Any]) -> None:
        """When asked, on PyMySQL and mysqlclient, take over the pool's reset on return
        (``_reset``), unless the user chose one (``pool_reset_on_return``)."""
        if (
            self._skip_rollback
            and self._driver in _reset.DRIVERS
            and "reset_on_return" not in pool_args
            and _reset.supported()
        ):
            pool_args["reset_on_return"] = None
            self._owns_reset = True

    def update_url(self, url: URL) -> URL:
        """The URL without our options: the driver never sees them."""
        return url.difference_update_query(self._names)

    def engine_created(self, engine: Engine) -> None:
        if self._owns_reset:
            # First, and whatever harden() does: the pool resets nothing by itself now.
            _reset.install(engine)
        if engine in _states:  # named twice, in the URL and in plugins=[...]
            return
        try:
            harden(engine, **self._arguments)
        except ConfigurationError:
            raise
        except Exception as error:  # fail open: the engine works, unhardened
            message = (
                f"sessionward plugin: harden() failed on "
                f"{engine.url.render_as_string(hide_password=True)} "
                f"({type(error).__name__}: {error}); the engine is used unhardened"
            )
            logger.warning("%s", message, exc_info=error)
            try:
                warnings.warn(message, FallbackWarning, stacklevel=2)
            except Exception:
                logger.debug("FallbackWarning raised as an error and dropped", exc_info=True)
