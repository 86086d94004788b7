"""The engine's ``DatabaseWrapper``: Django's MySQL one with sessionward's mixin.

Importing it needs ``MySQLdb`` (mysqlclient, or PyMySQL installed under that
name), exactly as Django's own ``django.db.backends.mysql.base`` does, and
fails with Django's own ``ImproperlyConfigured`` when it is missing.
"""

from django.db.backends.mysql import base as _django  # type: ignore[import-untyped]

from .....integrations.django._engine import SessionwardWrapperMixin
from .....integrations.django._origin import OriginOperationsMixin


class DatabaseOperations(OriginOperationsMixin, _django.DatabaseOperations):  # type: ignore[misc]
    """Django's MySQL operations; executed statements are reported without our comment."""


class DatabaseWrapper(SessionwardWrapperMixin, _django.DatabaseWrapper):  # type: ignore[misc]
    """Django's MySQL wrapper with timeouts, a liveness check and session names."""

    ops_class = DatabaseOperations
