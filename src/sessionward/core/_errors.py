"""The one exception tree of sessionward.

::

    SessionwardError
    ├── ConfigurationError        bad input: a URL, a filter, a duration, a missing driver
    │   └── DriverNotInstalled    the extra for this server is not installed
    ├── ConnectionFailed          the server could not be reached or refused the login
    │   └── AuthenticationFailed  wrong user or password
    └── PermissionDenied          the role lacks a privilege the action needs

Errors carry only a message so they pickle across processes.  At the CLI edge
every ``SessionwardError`` becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations


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
