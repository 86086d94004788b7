"""sessionward for Django.

``TEST_RUNNER = "sessionward.django.TestRunner"`` ends the sessions left on
the test databases before Django creates and drops them, so ``manage.py test``
never fails with "database … is being accessed by other users".
``INSTALLED_APPS += ["sessionward.django"]`` adds ``manage.py sessions`` and
``manage.py endsessions``.

Outside requests, ``fresh_connections()`` (a decorator and context manager)
replaces connections the server ended and closes them after the unit, and
``ThreadPoolExecutor`` does so for every task.  The engines
``sessionward.django.db.backends.postgresql`` and ``.mysql`` apply
``OPTIONS["sessionward_timeouts"]``, notice server-ended connections before
use and name each session after its process and thread.
"""

from ..core import DriverNotInstalled as _DriverNotInstalled

try:
    import django  # type: ignore[import-untyped]  # noqa: F401 - to say what is missing
except ImportError:
    raise _DriverNotInstalled(
        "sessionward.django needs Django: pip install 'sessionward[django]'"
    ) from None

from ..integrations.django import (
    TestDatabasePlan,
    database_options,
    end_test_database_sessions,
    name_of_test_database,
    names_of_test_databases,
    plan_test_databases,
    server_url,
    vendor_of,
)
from ..integrations.django._fresh import ThreadPoolExecutor, fresh_connections
from ..integrations.django._runner import SessionwardTestRunnerMixin, TestRunner

__all__ = [
    "SessionwardTestRunnerMixin",
    "TestDatabasePlan",
    "TestRunner",
    "ThreadPoolExecutor",
    "database_options",
    "end_test_database_sessions",
    "fresh_connections",
    "name_of_test_database",
    "names_of_test_databases",
    "plan_test_databases",
    "server_url",
    "vendor_of",
]
