"""The public names of the Django integration are pinned."""

import argparse
import types

import pytest

import sessionward.django
import sessionward.integrations.django
from sessionward.interfaces.django._commands import EndSessionsCommand, SessionsCommand
from sessionward.interfaces.shell._options import FILTER_KEYS

DJANGO_ALL = [
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
INTEGRATION_ALL = [
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
MODULES = [sessionward.django, sessionward.integrations.django]


@pytest.mark.parametrize(
    ("module", "expected"),
    [(sessionward.django, DJANGO_ALL), (sessionward.integrations.django, INTEGRATION_ALL)],
    ids=["sessionward.django", "sessionward.integrations.django"],
)
def test_all_is_pinned(module, expected):
    assert module.__all__ == expected


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_name_is_exported(module):
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")
    assert public <= set(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_the_facade_reexports_the_integration():
    for name in set(DJANGO_ALL) & set(INTEGRATION_ALL):
        assert getattr(sessionward.django, name) is getattr(sessionward.integrations.django, name)


@pytest.mark.parametrize("command", [SessionsCommand, EndSessionsCommand])
def test_management_commands_take_every_filter_of_the_cli(command):
    parser = command().create_parser("manage.py", "x")
    destinations = {a.dest for a in parser._actions if isinstance(a, argparse.Action)}
    assert set(FILTER_KEYS) <= destinations
