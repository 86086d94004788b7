"""The test runner that ends leftover sessions before test databases are made and dropped."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import connections  # type: ignore[import-untyped]
from django.test.runner import DiscoverRunner  # type: ignore[import-untyped]

from ..._control import DEFAULT_WAIT_SECONDS
from ...core import redact_url
from ._leftovers import TestDatabasePlan, end_test_database_sessions, plan_test_databases

#: Where users name these classes (``TEST_RUNNER``), so reprs, pickles and
#: Django's own messages say so too.
PUBLIC_MODULE = "sessionward.django"


class SessionwardTestRunnerMixin:
    """End the sessions left on the test databases before Django creates and drops them.

    Put it before your runner's base class::

        class MyRunner(SessionwardTestRunnerMixin, DiscoverRunner): ...

    Only the test databases of the aliases being set up are touched (with their
    ``--parallel`` clones), never a main database; every client session there
    is ended, superusers' included, since a test database is a throwaway copy.
    One line per session ended goes through the runner's ``log``.
    """

    __module__ = PUBLIC_MODULE

    #: How long to wait for each leftover session to leave.
    sessionward_wait_seconds: float = DEFAULT_WAIT_SECONDS

    if TYPE_CHECKING:  # provided by DiscoverRunner
        parallel: int
        verbosity: int
        logger: logging.Logger | None

        def log(self, msg: str, level: int | None = None) -> None: ...

    _sessionward_plan: TestDatabasePlan | None = None

    def setup_databases(self, **kwargs: Any) -> Any:
        aliases: Iterable[str] | None = kwargs.get("aliases")
        try:
            self._sessionward_plan = plan_test_databases(
                _databases_now(), aliases=aliases, parallel=self._sessionward_parallel()
            )
        except Exception as error:  # one line, then Django's own setup
            self._sessionward_failed(error)
        else:
            self._sessionward_end(self._sessionward_plan)
        base: Any = super()
        return base.setup_databases(**kwargs)

    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        # This process's own connections first, as Django's destroy path does,
        # so that only other clients' sessions are left to end.
        connections.close_all()
        for connection in connections.all(initialized_only=True):
            close_pool = getattr(connection, "close_pool", None)
            if close_pool is not None:
                close_pool()
        plan = self._sessionward_plan
        try:
            if plan is None:
                plan = plan_test_databases(
                    _databases_before(old_config), parallel=self._sessionward_parallel()
                )
        except Exception as error:  # one line, then Django's own teardown
            self._sessionward_failed(error)
        else:
            self._sessionward_end(plan)
        base: Any = super()
        base.teardown_databases(old_config, **kwargs)

    def _sessionward_parallel(self) -> int:
        # Final by now: build_suite() lowers it to the number of test classes.
        return int(getattr(self, "parallel", 0) or 0)

    def _sessionward_end(self, plan: TestDatabasePlan) -> None:
        for line in plan.skipped:
            self._sessionward_report(f"sessionward: not clearing {line}", logging.DEBUG)
        try:
            end_test_database_sessions(
                plan, report=self._sessionward_report, wait_seconds=self.sessionward_wait_seconds
            )
        except Exception as error:  # a bug of ours must not hide Django's errors
            self._sessionward_failed(error)

    def _sessionward_failed(self, error: Exception) -> None:
        self._sessionward_report(
            f"sessionward: internal error while ending leftover sessions: "
            f"{type(error).__name__}: {redact_url(str(error))} (please report it)",
            logging.ERROR,
        )

    def _sessionward_report(self, message: str, level: int) -> None:
        quiet = getattr(self, "verbosity", 1) <= 0 and getattr(self, "logger", None) is None
        if level >= logging.WARNING and quiet:
            # --verbosity 0 silences the runner's log; a failure still says why.
            sys.stderr.write(message + "\n")
            return
        self.log(message, level)


class TestRunner(SessionwardTestRunnerMixin, DiscoverRunner):  # type: ignore[misc]
    """Django's ``DiscoverRunner`` that ends leftover sessions on the test databases.

    ``TEST_RUNNER = "sessionward.django.TestRunner"``.
    """

    __module__ = PUBLIC_MODULE
    __test__ = False  # a runner, not a test class for pytest to collect


def _databases_now() -> dict[str, Mapping[str, Any]]:
    """Every alias's settings, with Django's defaults (``TEST``) filled in."""
    return {alias: connections[alias].settings_dict for alias in connections}


def _databases_before(old_config: Any) -> dict[str, Mapping[str, Any]]:
    """The settings the databases had before setup, from ``setup_databases``' result."""
    databases: dict[str, Mapping[str, Any]] = {}
    for connection, old_name, destroy in old_config:
        if destroy:
            databases[connection.alias] = {**connection.settings_dict, "NAME": old_name}
    return databases
