"""Imports point inward: core ← servers ← integrations ← interfaces, and no circles.

Read from the source with ``ast`` (imports inside functions count too), so a
lazy import cannot hide a dependency the wrong way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sessionward"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``sessionward`` module ``path`` imports, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in found if module.startswith("sessionward")}


MODULES = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}

#: (importer prefix, forbidden prefixes): what each layer must never import.
RULES = [
    ("sessionward.core", ("sessionward.servers", "sessionward.integrations",
                          "sessionward.interfaces", "sessionward._control")),
    ("sessionward.servers", ("sessionward.integrations", "sessionward.interfaces")),
    ("sessionward.integrations", ("sessionward.interfaces",)),
    ("sessionward.interfaces.shell", ("sessionward.interfaces.cli",
                                      "sessionward.interfaces.reaper",
                                      "sessionward.interfaces.top",
                                      "sessionward.interfaces.recorder")),
    ("sessionward.interfaces.reaper", ("sessionward.interfaces.cli",
                                       "sessionward.interfaces.top",
                                       "sessionward.interfaces.recorder")),
    ("sessionward.interfaces.top", ("sessionward.interfaces.cli",
                                    "sessionward.interfaces.reaper")),
    ("sessionward.interfaces.recorder", ("sessionward.interfaces.cli",
                                         "sessionward.interfaces.reaper")),
    ("sessionward.interfaces.django", ("sessionward.interfaces.cli",)),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_a_layer_never_imports_an_outer_one(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imports in MODULES.items()
        if module == layer or module.startswith(layer + ".")
        for imported in imports
        if imported.startswith(forbidden)
    )
    assert wrong == []


def test_the_rules_see_the_modules() -> None:
    # A typo in a prefix would make a rule hold vacuously.
    for layer, _ in RULES:
        assert any(m == layer or m.startswith(layer + ".") for m in MODULES), layer
    assert "sessionward.interfaces.cli._main" in MODULES
    assert "sessionward.interfaces.reaper" in MODULES["sessionward.interfaces.cli._main"] or any(
        name.startswith("sessionward.interfaces.reaper")
        for name in MODULES["sessionward.interfaces.cli._main"]
    )
