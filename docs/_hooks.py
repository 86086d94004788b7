"""MkDocs hooks: the reference parts of the docs are generated from the code.

A page writes a marker, ``<!-- generated: NAME -->`` or
``<!-- generated: cli-help COMMAND -->``, and gets the text made from the
code in its place, so the error tree, the codes each driver's errors map
to, the policy keys and every command's options cannot drift from what
the code does.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"<!-- generated: ([a-z-]+)(?: ([a-z -]+))? -->")
#: ``<!-- include: reaper/sessionward-reap.service -->``: a file of docs/, as a code block.
_INCLUDE = re.compile(r"<!-- include: ([\w./-]+) -->")
_DOCS = Path(__file__).resolve().parent
_LANGUAGES = {".toml": "toml", ".yaml": "yaml", ".service": "ini"}


def on_page_markdown(markdown: str, **_: Any) -> str:
    markdown = _INCLUDE.sub(lambda m: _include(m.group(1)), markdown)
    return _MARKER.sub(lambda m: _render(m.group(1), (m.group(2) or "").strip()), markdown)


def _include(name: str) -> str:
    path = (_DOCS / name).resolve()
    if _DOCS not in path.parents or not path.is_file():
        raise ValueError(f"include: no file {name!r} in docs/")
    language = _LANGUAGES.get(path.suffix, "text")
    return f"```{language}\n{path.read_text(encoding='utf-8').rstrip()}\n```"


def _render(name: str, argument: str) -> str:
    if name == "cli-help":
        return _cli_help(argument)
    makers = {
        "error-tree": _error_tree,
        "postgresql-codes": _postgresql_codes,
        "mysql-codes": _mysql_codes,
        "pooler-reasons": _pooler_reasons,
        "policy-keys": _policy_keys,
        "example-policy": _example_policy,
        "exit-status": _exit_status,
    }
    if name not in makers:
        raise ValueError(f"unknown generated block {name!r}")
    return makers[name]()


def _first_line(obj: object) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ") if doc else ""


def _error_tree() -> str:
    from sessionward.core import SessionwardError

    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        if not cls.__name__.startswith("_"):
            lines.append(f"{'    ' * depth}- `{cls.__name__}`: {_first_line(cls)}")
            depth += 1
        for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
            if sub.__module__.startswith("sessionward."):
                walk(sub, depth)

    walk(SessionwardError, 0)
    return "\n".join(lines)


def _postgresql_codes() -> str:
    from sessionward.core._classify import PG_CODES, PG_CONNECTION_EXCEPTION_CLASS

    rows = [f"| `{code}` | `{cls.__name__}` |" for code, cls in sorted(PG_CODES.items())]
    rows.append(f"| `{PG_CONNECTION_EXCEPTION_CLASS}xxx` (any other) | `ConnectionLost` |")
    return "| SQLSTATE | class |\n|---|---|\n" + "\n".join(rows)


def _mysql_codes() -> str:
    from sessionward.core._classify import MYSQL_CODES

    rows = [f"| {code} | `{cls.__name__}` |" for code, cls in sorted(MYSQL_CODES.items())]
    return "| error number | class |\n|---:|---|\n" + "\n".join(rows)


def _pooler_reasons() -> str:
    from sessionward.core import _classify

    texts = getattr(_classify, "_POOLER_TEXTS", ())
    rows = [f"| `{text}` | `{cls.__name__}` |" for text, cls in texts]
    return "| PgBouncer's reason (SQLSTATE 08P01) | class |\n|---|---|\n" + "\n".join(rows)


def _policy_keys() -> str:
    from sessionward.core import _policy_toml as keys

    def listed(values: Any) -> str:
        return ", ".join(f"`{value}`" for value in values)

    return "\n".join([
        "| table | keys |",
        "|---|---|",
        f"| top level | {listed(keys.TOP_KEYS)} |",
        f"| `[[rule]]` | {listed(keys.RULE_KEYS)} |",
        f"| `match` / `exclude` | {listed(keys.MATCH_KEYS)} |",
        f"| `[protect]` | {listed(keys.PROTECT_KEYS)} |",
        f"| `[limits]` / a rule's `limits` | {listed(keys.LIMIT_KEYS)} |",
    ])  # fmt: skip


def _example_policy() -> str:
    text = files("sessionward.interfaces.reaper").joinpath("policy.example.toml").read_text()
    return f"```toml\n{text.rstrip()}\n```"


def _exit_status() -> str:
    from sessionward.interfaces.shell import _process

    names = sorted(n for n in dir(_process) if n.startswith("EXIT_"))
    rows = [f"| {getattr(_process, n)} | `{n}` |" for n in names]
    rows.sort(key=lambda row: int(row.split()[1]))
    return "| status | name |\n|---:|---|\n" + "\n".join(rows)


def _cli_help(command: str) -> str:
    import click

    from sessionward.interfaces.cli._main import cli

    group: click.Command = cli
    context = click.Context(cli, info_name="sessionward", terminal_width=88)
    for part in command.split():
        assert isinstance(group, click.Group)
        found = group.get_command(context, part)
        if found is None:
            raise ValueError(f"no command {command!r}")
        context = click.Context(found, info_name=part, parent=context, terminal_width=88)
        group = found
    return f"```text\n{group.get_help(context).rstrip()}\n```"
