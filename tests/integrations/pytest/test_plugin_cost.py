"""The plugin costs nothing measurable when it is not enabled: it imports nothing heavy.

pytest imports every ``pytest11`` entry point at start-up, in every project that
has sessionward installed, whether or not it uses the plugin.  Counting modules
rather than timing them: a module list is the same on a loaded machine.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from tests.integrations.django_project import clean_environ, run

#: All that ``import sessionward.integrations.pytest`` may add to a process that has pytest.
PLUGIN_MODULES = {
    "sessionward",
    "sessionward.integrations",
    "sessionward.integrations.pytest",
    "sessionward.integrations.pytest._options",
}

NEW_MODULES = """\
import json, sys
import pytest
before = set(sys.modules)
import sessionward.integrations.pytest
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_the_plugin_adds_only_its_own_small_modules() -> None:
    done = run([sys.executable, "-c", NEW_MODULES], env=clean_environ(), cwd=Path.cwd())
    assert done.code == 0, done.output
    assert set(json.loads(done.out)) == PLUGIN_MODULES


CONFTEST = """\
import json, os, sys


def pytest_sessionfinish(session):
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "sessionward")
    with open(os.environ["SW_MODULES_FILE"], "w") as file:
        json.dump(loaded, file)
"""


def test_a_run_without_the_plugin_enabled_loads_nothing_more(tmp_path: Path) -> None:
    """A whole pytest run (entry point loaded, plugin not enabled) ends with only the
    plugin's switch imported: no driver, no Django or SQLAlchemy code, no core."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent("""\
            def test_plain():
                assert 1 + 1 == 2
            """)
    )
    modules_file = tmp_path / "modules.json"
    done = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        env=clean_environ(SW_MODULES_FILE=str(modules_file)),
        cwd=tmp_path,
    )
    assert done.code == 0, done.output
    assert "1 passed" in done.out, done.output
    assert set(json.loads(modules_file.read_text())) == PLUGIN_MODULES
