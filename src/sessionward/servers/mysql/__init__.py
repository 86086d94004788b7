"""The MariaDB/MySQL adapter (PyMySQL), behind the ``core.Backend`` protocol."""

from ._backend import MySQLBackend

__all__ = ["MySQLBackend"]
