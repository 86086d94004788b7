"""The PostgreSQL adapter (13 and later), over psycopg 3."""

from ._backend import PostgresBackend

__all__ = ["PostgresBackend"]
