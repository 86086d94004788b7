"""The PgBouncer admin console adapter."""

from ._admin import PgBouncerAdmin

__all__ = ["PgBouncerAdmin"]
