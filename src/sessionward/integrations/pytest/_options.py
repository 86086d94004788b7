"""The plugin's options and ini keys, and its switch: nothing happens unless enabled."""

from __future__ import annotations

import pytest

_PLUGIN_NAME = "sessionward-enabled"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sessionward", "sessionward: test databases and leaked sessions")
    group.addoption(
        "--sessionward",
        action="store_true",
        default=None,
        help="Enable the sessionward plugin: end leftover sessions on pytest-django's test "
        "databases before they are created and dropped; enable the sessionward_no_leaks "
        "fixture and marker. [ini: sessionward = true]",
    )
    group.addoption(
        "--no-sessionward",
        dest="sessionward",
        action="store_false",
        help="Disable the sessionward plugin even if the ini file enables it.",
    )
    group.addoption(
        "--sessionward-dsn",
        metavar="URL",
        default=None,
        help="Server sessionward_no_leaks watches [default: ini sessionward_dsn, else "
        "$DATABASE_URL, else pytest-django's default database].",
    )
    parser.addini("sessionward", "Enable the sessionward plugin.", type="bool", default=False)
    parser.addini("sessionward_dsn", "Server sessionward_no_leaks watches.", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sessionward_no_leaks: fail the test if it ends with more server sessions of this "
        "process open than it began with (when the sessionward plugin is enabled).",
    )
    if not enabled(config):
        return
    from ._plugin import SessionwardPlugin

    config.pluginmanager.register(SessionwardPlugin(config), _PLUGIN_NAME)


def enabled(config: pytest.Config) -> bool:
    option = config.getoption("sessionward")
    if option is not None:
        return bool(option)
    return bool(config.getini("sessionward"))
