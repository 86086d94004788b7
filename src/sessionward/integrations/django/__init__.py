"""Django integration: settings helpers and the ending of leftover test-database sessions.

The test runner and the management commands, which import Django, live in
``sessionward.django``.
"""

from ._databases import name_of_test_database, names_of_test_databases, server_url, vendor_of
from ._leftovers import (
    TestDatabaseGroup,
    TestDatabasePlan,
    end_test_database_sessions,
    plan_test_databases,
)
from ._timeouts import database_options

__all__ = [
    "TestDatabaseGroup",
    "TestDatabasePlan",
    "database_options",
    "end_test_database_sessions",
    "name_of_test_database",
    "names_of_test_databases",
    "plan_test_databases",
    "server_url",
    "vendor_of",
]
