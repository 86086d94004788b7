"""The engine's ``DatabaseWrapper``: Django's PostgreSQL one with sessionward's mixin."""

from django.db.backends.postgresql import base as _django  # type: ignore[import-untyped]

from .....integrations.django._engine import SessionwardWrapperMixin
from .....integrations.django._origin import OriginOperationsMixin


class DatabaseOperations(OriginOperationsMixin, _django.DatabaseOperations):  # type: ignore[misc]
    """Django's PostgreSQL operations; executed statements are reported without our comment."""


class DatabaseWrapper(SessionwardWrapperMixin, _django.DatabaseWrapper):  # type: ignore[misc]
    """Django's PostgreSQL wrapper with timeouts, a socket check and session names."""

    ops_class = DatabaseOperations
