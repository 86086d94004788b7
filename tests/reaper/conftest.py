"""Fixtures shared by the reaper's server tests."""

import pytest

from ._helpers import prepare_table


@pytest.fixture
def scene(server):
    """The reaped server: a test database with a table, and an ordinary (non-superuser) role."""
    database = server.create_database()
    prepare_table(server, database)
    return server, database, server.create_user()
