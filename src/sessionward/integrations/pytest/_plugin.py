"""What the plugin does once enabled: clear test databases, watch for leaked sessions.

Registered by ``pytest_configure`` only when enabled, so a disabled plugin adds
no fixture, no hook, no output and never connects to a server.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

from ...core import ConfigurationError, SessionwardError, redact_url
from ..django._databases import server_url, vendor_of
from ..django._leftovers import TestDatabasePlan, end_test_database_sessions, plan_test_databases
from ._leaks import LeakGuard

MARKER = "sessionward_no_leaks"
_GUARD = pytest.StashKey[LeakGuard]()


class SessionwardPlugin:
    """The enabled plugin; one per pytest run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._lines: list[str] = []

    # ------------------------------------------------------------ test databases

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """Around pytest-django's ``django_db_setup`` (or a project's override of it).

        Its dependencies are set up by now (an xdist suffix is already in the
        test names); a finalizer added after it ran is run before its teardown.
        """
        if fixturedef.argname != "django_db_setup" or not self._recreates(request):
            return (yield)
        plan = self._plan()
        if plan is not None:
            self._end(plan)
        result = yield
        if plan is not None and not _fixture_value(request, "django_db_keepdb"):
            request.addfinalizer(lambda: self._end_before_drop(plan))
        return result

    def _end_before_drop(self, plan: TestDatabasePlan) -> None:
        connections = _django_connections()
        # This process's own connections first, as Django's destroy path does,
        # so that only the sessions left by others (and by leaks) are ended.
        connections.close_all()
        self._end(plan)

    def _recreates(self, request: pytest.FixtureRequest) -> bool:
        """False with ``--reuse-db`` (without ``--create-db``): the databases are kept."""
        keepdb = _fixture_value(request, "django_db_keepdb")
        createdb = _fixture_value(request, "django_db_createdb")
        return not keepdb or bool(createdb)

    def _plan(self) -> TestDatabasePlan | None:
        try:
            connections = _django_connections()
            databases: dict[str, Mapping[str, Any]] = {
                alias: connections[alias].settings_dict for alias in connections
            }
            return plan_test_databases(databases)
        except Exception as error:  # one line; pytest-django reports its own errors
            self._failed(error)
            return None

    def _end(self, plan: TestDatabasePlan) -> None:
        try:
            end_test_database_sessions(plan, report=self._report)
        except Exception as error:  # a bug of ours must not hide pytest-django's errors
            self._failed(error)

    def _failed(self, error: Exception) -> None:
        self._report(
            f"sessionward: internal error while ending leftover sessions: "
            f"{type(error).__name__}: {redact_url(str(error))} (please report it)",
            logging.ERROR,
        )

    def _report(self, message: str, level: int) -> None:
        # Said in the terminal summary: while a fixture sets up, pytest captures output.
        if level >= logging.WARNING or self.config.get_verbosity() >= 0:
            self._lines.append(message)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self._lines:
            terminalreporter.write_sep("-", "sessionward")
            for line in self._lines:
                terminalreporter.write_line(line)

    # ------------------------------------------------------------ leaked sessions

    @pytest.fixture
    def sessionward_no_leaks(self, request: pytest.FixtureRequest) -> LeakGuard:
        """Fail the test if it ends with more server sessions of this process open.

        Counted after every fixture of the test is set up and when the test
        function returns, so connections fixtures open and close are not leaks.
        """
        guard = _guard_or_fail(self._leak_url)
        request.node.stash[_GUARD] = guard
        return guard

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        result = yield
        guard = item.stash.get(_GUARD, None)
        if guard is None and item.get_closest_marker(MARKER) is not None:
            guard = item.stash[_GUARD] = _guard_or_fail(self._leak_url)
        if guard is not None:
            try:
                guard.start()
            except SessionwardError as error:
                pytest.fail(f"{MARKER}: {redact_url(str(error))}", pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        result = yield  # a test that failed already is not checked
        guard = item.stash.get(_GUARD, None)
        if guard is not None and guard.started:
            try:
                leaked = guard.leaked()
            except SessionwardError as error:
                pytest.fail(f"{MARKER}: {redact_url(str(error))}", pytrace=False)
            if leaked:
                pytest.fail(guard.report(leaked), pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        guard = item.stash.get(_GUARD, None)
        if guard is not None:
            del item.stash[_GUARD]
            guard.close()
        return (yield)

    def _leak_url(self) -> str:
        """``--sessionward-dsn``, else ``sessionward_dsn``, else ``DATABASE_URL``, else Django's."""
        dsn = self.config.getoption("sessionward_dsn") or self.config.getini("sessionward_dsn")
        if dsn:
            return str(dsn)
        if os.environ.get("DATABASE_URL"):
            return os.environ["DATABASE_URL"]
        url = _django_default_url()
        if url is not None:
            return url
        raise ConfigurationError(
            "no server to watch: give --sessionward-dsn, the sessionward_dsn ini option or "
            "DATABASE_URL (or use pytest-django with a PostgreSQL or MySQL database)"
        )


def _guard_or_fail(url_of: Callable[[], str]) -> LeakGuard:
    try:
        return LeakGuard(url_of())
    except SessionwardError as error:
        pytest.fail(f"{MARKER}: {redact_url(str(error))}", pytrace=False)


def _django_connections() -> Any:
    """Django's ``connections``; imported late, since most runs have no Django."""
    from django.db import connections  # type: ignore[import-untyped]

    return connections


def _fixture_value(request: pytest.FixtureRequest, name: str) -> object:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None


def _django_default_url() -> str | None:
    """The server of pytest-django's ``default`` alias, when Django is configured."""
    if "django.conf" not in sys.modules:
        return None
    from django.conf import settings  # type: ignore[import-untyped]

    connections = _django_connections()

    if not settings.configured or "default" not in connections:
        return None
    settings_dict = connections["default"].settings_dict
    if vendor_of(settings_dict) is None:
        return None
    try:
        return server_url(settings_dict)
    except ConfigurationError:
        return None
