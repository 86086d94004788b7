"""The one exception tree of sessionward.

::

    SessionwardError
    ├── ConfigurationError        bad input: a URL, a filter, a duration, a missing driver
    │   └── DriverNotInstalled    the extra for this server is not installed
    ├── ConnectionFailed          the server could not be reached or refused the login
    │   └── AuthenticationFailed  wrong user or password
    ├── PermissionDenied          the role lacks a privilege the action needs
    └── DatabaseInUse             sessions (or locks, prepared transactions) keep a database
                                  from being dropped; nothing was dropped

Errors carry a message (``DatabaseInUse`` also the sessions it saw) and pickle
across processes.  At the CLI edge
every ``SessionwardError`` becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._session import Session


class SessionwardError(Exception):
    """Base of every error sessionward raises on purpose."""


class ConfigurationError(SessionwardError):
    """The caller asked for something that cannot work as stated."""


class DriverNotInstalled(ConfigurationError):
    """The database driver for a server kind is missing."""


class ConnectionFailed(SessionwardError):
    """The server could not be reached, or it refused the connection."""


class AuthenticationFailed(ConnectionFailed):
    """The server rejected the user name or password."""


class PermissionDenied(SessionwardError):
    """The connected role lacks a privilege the action needs."""


class DatabaseInUse(SessionwardError):
    """A database was not dropped because something still uses it.

    ``sessions`` lists the sessions seen using it, when known; it travels in
    the instance dictionary, so the error still pickles with its message.
    """

    def __init__(self, message: str, *, sessions: tuple[Session, ...] = ()) -> None:
        super().__init__(message)
        self.sessions = sessions
