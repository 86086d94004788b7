"""The sessionward pytest plugin (entry point ``pytest11``); inactive unless enabled.

Enable it with ``--sessionward`` or the ini key ``sessionward = true``.  Then,
with pytest-django, the sessions left on the test databases are ended before
they are created and before they are dropped, and the ``sessionward_no_leaks``
fixture and marker fail a test that leaves server sessions of this process open.
"""

from ._options import pytest_addoption, pytest_configure

__all__ = ["pytest_addoption", "pytest_configure"]
