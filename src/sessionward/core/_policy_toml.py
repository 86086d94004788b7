"""Read a policy from TOML text; every error names the line it is about.

>>> policy = parse_policy('''
... [[rule]]
... name = "idle-in-transaction"
... action = "terminate"
... match = { idle_in_transaction_over = "5m" }
... ''')
>>> policy.rules[0].match.idle_in_transaction_over_seconds
300.0
>>> parse_policy('[[rule]]\\nname = "x"\\naction = "explode"\\n')
Traceback (most recent call last):
...
sessionward.core._errors.ConfigurationError: policy line 3: rule 'x': action must be one of ...
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from ._durations import duration_problem, parse_duration
from ._errors import ConfigurationError
from ._filter import compile_query_regex, parse_client, parse_state
from ._policy import Limits, Match, Policy, PolicyAction, Protect, Rule, Victims

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

_LIST_FIELDS = {
    "database": "databases",
    "user": "users",
    "application": "applications",
    "client": "clients",
    "state": "states",
    "backend_type": "backend_types",
}
_DURATION_FIELDS = {
    "idle_over": "idle_over_seconds",
    "idle_in_transaction_over": "idle_in_transaction_over_seconds",
    "xact_over": "xact_over_seconds",
    "query_over": "query_over_seconds",
    "wait_over": "wait_over_seconds",
}
_COUNT_FIELDS = ("blocking_at_least", "xmin_age_over")
#: ``origin.service = "billing"``: globs on the origin a client named.
_ORIGIN_FIELDS = {
    "service": "origin_services",
    "host": "origin_hosts",
    "holder": "origin_holders",
    "code": "origin_codes",
}
MATCH_KEYS = (*_LIST_FIELDS, "query", *_DURATION_FIELDS, *_COUNT_FIELDS, "origin")
RULE_KEYS = (
    "name", "action", "match", "exclude", "victims", "limits", "grace", "include_superusers",
)  # fmt: skip
PROTECT_KEYS = ("users", "applications", "databases", "clients")
LIMIT_KEYS = ("max_per_sweep", "max_per_minute")
TOP_KEYS = ("rule", "protect", "limits")

#: The largest count a policy may give: more sessions than any server holds.
MAX_COUNT = 100_000
#: ``xmin_age_over`` counts transactions; no xmin can be older than 2**31 (wraparound).
MAX_XMIN_AGE = 2**31 - 1
#: The lowest value of each count: ``blocking_at_least = 0`` would hold for every session.
_COUNT_MINIMUM = {"blocking_at_least": 1, "xmin_age_over": 0}
_COUNT_MAXIMUM = {"blocking_at_least": MAX_COUNT, "xmin_age_over": MAX_XMIN_AGE}
#: How much of a refused value an error message repeats.
_SHOWN_CHARS = 60


def parse_policy(text: str) -> Policy:
    """Parse and check a policy; raise ``ConfigurationError`` naming the line at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"policy is not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigurationError("policy is not valid TOML: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts
        # Our words, not Python's (they differ between versions and advise raising the limit).
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        raise ConfigurationError(
            f"policy is not valid TOML: a number of more than {limit} digits"
        ) from None
    lines = _key_lines(text)
    return _Reader(lines).policy(data)


class _Reader:
    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines

    def fail(self, where: str, message: str) -> ConfigurationError:
        line = self.line(where)
        prefix = f"policy line {line}: " if line else "policy: "
        return ConfigurationError(prefix + message)

    def line(self, where: str) -> int | None:
        # The key itself, else the nearest enclosing table that was written out.
        while where:
            if where in self.lines:
                return self.lines[where]
            where = where.rpartition(".")[0]
        return None

    def policy(self, data: dict[str, Any]) -> Policy:
        self.unknown(data, TOP_KEYS, "", "top level")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list) or not raw_rules:
            raise self.fail("rule", "no rules: add at least one [[rule]] table")
        rules = tuple(self.rule(raw, f"rule.{i}") for i, raw in enumerate(raw_rules))
        names: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.name in names:
                raise self.fail(f"rule.{i}.name", f"rule name {rule.name!r} used twice")
            names[rule.name] = i
        return Policy(
            rules=rules,
            protect=self.protect(data.get("protect", {})),
            limits=self.limits(data.get("limits", {}), "limits", "limits"),
            lines=dict(self.lines),
        )

    def rule(self, raw: Any, where: str) -> Rule:
        if not isinstance(raw, dict):
            raise self.fail(where, "each rule must be a table ([[rule]])")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(where, 'every rule needs a name = "…"')
        label = f"rule {name!r}"
        self.unknown(raw, RULE_KEYS, where, label)
        action_text = raw.get("action")
        if action_text is None:
            raise self.fail(where, f"{label}: no action (report, cancel, terminate, "
                                   "cancel_then_terminate)")  # fmt: skip
        action = self.choice(PolicyAction, action_text, f"{where}.action", f"{label}: action")
        victims = self.choice(
            Victims, raw.get("victims", "all"), f"{where}.victims", f"{label}: victims"
        )
        match_raw = raw.get("match", {})
        match = self.match(match_raw, f"{where}.match", f"{label}: match")
        exclude_raw = raw.get("exclude", [])
        if isinstance(exclude_raw, dict):
            exclude_raw = [exclude_raw]
        if not isinstance(exclude_raw, list):
            raise self.fail(f"{where}.exclude", f"{label}: exclude must be a table or tables")
        exclude = tuple(
            self.match(entry, f"{where}.exclude.{j}", f"{label}: exclude")
            for j, entry in enumerate(exclude_raw)
        )
        grace = 10.0
        if "grace" in raw:
            if action is not PolicyAction.CANCEL_THEN_TERMINATE:
                raise self.fail(
                    f"{where}.grace", f"{label}: grace applies only to cancel_then_terminate"
                )
            grace = self.duration(raw["grace"], f"{where}.grace", f"{label}: grace")
            if grace == 0:
                raise self.fail(
                    f"{where}.grace",
                    f"{label}: grace = 0 leaves no time to finish; for that, write action = "
                    '"terminate"',
                )
        superusers = raw.get("include_superusers", False)
        if not isinstance(superusers, bool):
            raise self.fail(
                f"{where}.include_superusers", f"{label}: include_superusers must be true or false"
            )
        return Rule(
            name=name,
            action=action,
            match=match,
            exclude=exclude,
            victims=victims,
            limits=self.limits(raw.get("limits", {}), f"{where}.limits", f"{label}: limits"),
            grace_seconds=grace,
            include_superusers=superusers,
        )

    def match(self, raw: Any, where: str, label: str) -> Match:
        if not isinstance(raw, dict):
            raise self.fail(where, f"{label} must be a table")
        raw = _nest_origin(raw)
        self.unknown(raw, MATCH_KEYS, where, label)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            at = f"{where}.{key}"
            if key == "origin":
                values.update(self.origin(value, at, label))
            elif key in _LIST_FIELDS:
                items = self.strings(value, at, f"{label}: {key}")
                convert: Callable[[str], Any] = {
                    "client": parse_client,
                    "state": parse_state,
                }.get(key, str)
                values[_LIST_FIELDS[key]] = tuple(self.wrap(convert, v, at, label) for v in items)
            elif key == "query":
                if not isinstance(value, str):
                    raise self.fail(at, f"{label}: query must be a regular expression string")
                values["query"] = self.wrap(_policy_regex, value, at, label)
            elif key in _DURATION_FIELDS:
                values[_DURATION_FIELDS[key]] = self.duration(value, at, f"{label}: {key}")
            else:
                values[key] = self.count(
                    value,
                    at,
                    f"{label}: {key}",
                    minimum=_COUNT_MINIMUM[key],
                    maximum=_COUNT_MAXIMUM[key],
                )
        return Match(**values)

    def origin(self, raw: Any, where: str, label: str) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            raise self.fail(where, f'{label}: origin must be a table, as in origin.code = "a/*"')
        for part in raw:
            if part not in _ORIGIN_FIELDS:
                known = ", ".join(f"origin.{k}" for k in _ORIGIN_FIELDS)
                raise self.fail(
                    f"{where}.{part}", f"{label}: unknown key {f'origin.{part}'!r}; known: {known}"
                )
        return {
            _ORIGIN_FIELDS[part]: tuple(
                self.strings(value, f"{where}.{part}", f"{label}: origin.{part}")
            )
            for part, value in raw.items()
        }

    def protect(self, raw: Any) -> Protect:
        if not isinstance(raw, dict):
            raise self.fail("protect", "protect must be a table")
        self.unknown(raw, PROTECT_KEYS, "protect", "protect")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            items = self.strings(value, f"protect.{key}", f"protect: {key}")
            if key == "clients":
                values[key] = tuple(
                    self.wrap(parse_client, v, f"protect.{key}", "protect") for v in items
                )
            else:
                values[key] = tuple(items)
        return Protect(**values)

    def limits(self, raw: Any, where: str, label: str) -> Limits:
        if not isinstance(raw, dict):
            raise self.fail(where, f"{label} must be a table")
        self.unknown(raw, LIMIT_KEYS, where, label)
        return Limits(
            **{
                key: self.count(
                    value, f"{where}.{key}", f"{label}: {key}", minimum=1, maximum=MAX_COUNT
                )
                for key, value in raw.items()
            }
        )

    # ----------------------------------------------------------------- values

    def unknown(self, raw: dict[str, Any], known: tuple[str, ...], where: str, label: str) -> None:
        for key in raw:
            if key not in known:
                at = f"{where}.{key}" if where else key
                raise self.fail(at, f"{label}: unknown key {key!r}; known: {', '.join(known)}")

    def choice(self, kind: Any, value: Any, where: str, label: str) -> Any:
        options = [member.value for member in kind]
        if not isinstance(value, str) or value not in options:
            raise self.fail(
                where, f"{label} must be one of {', '.join(options)}, not {_shown(value)}"
            )
        return kind(value)

    def strings(self, value: Any, where: str, label: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) for item in items):
            raise self.fail(where, f"{label} must be a string or a list of strings")
        return list(items)

    def duration(self, value: Any, where: str, label: str) -> float:
        """A duration: a string such as ``"90s"``, or a number of seconds."""
        if isinstance(value, str):
            seconds: float = self.wrap(parse_duration, value, where, label)
            return seconds
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(
                where, f'{label} must be a duration such as "90s" or "5m", not {_shown(value)}'
            )
        # Clamped first: an int too large for a float is still just too long.
        seconds = float(max(-1, min(value, 2**63))) if isinstance(value, int) else value
        problem = duration_problem(seconds)
        if problem is not None:
            raise self.fail(
                where,
                f"{label} = {_shown(value)} {problem} "
                '(give seconds from 0 to 366 days, or a string such as "90s")',
            )
        return seconds

    def count(self, value: Any, where: str, label: str, *, minimum: int, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.fail(
                where,
                f"{label} must be a whole number from {minimum} to {maximum:,}, "
                f"not {_shown(value)}",
            )
        return value

    def wrap(self, convert: Callable[[str], Any], value: str, where: str, label: str) -> Any:
        try:
            return convert(value)
        except ConfigurationError as error:
            raise self.fail(where, f"{label}: {error}") from None


def _nest_origin(raw: dict[str, Any]) -> dict[str, Any]:
    """Read a quoted ``"origin.code" = …`` key as the dotted ``origin.code = …``."""
    flat = {k: v for k, v in raw.items() if isinstance(k, str) and k.startswith("origin.")}
    if not flat:
        return raw
    nested = {k: v for k, v in raw.items() if k not in flat}
    origin = nested.get("origin")
    merged = dict(origin) if isinstance(origin, dict) else {}
    for key, value in flat.items():
        merged[key.removeprefix("origin.")] = value
    nested["origin"] = merged if isinstance(origin, dict) or origin is None else origin
    return nested


def _policy_regex(pattern: str) -> re.Pattern[str]:
    return compile_query_regex(pattern, option="query")


def _shown(value: Any) -> str:
    """``value`` as TOML-ish text for an error line, cut when long."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


# Each pattern is linear in the line's length: no two adjacent parts can take the same
# character, so a long line (a 1 MiB string in a policy) cannot make them backtrack.
_HEADER = re.compile(r"^\s*(\[\[?)([^\]]*)\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")
_INLINE_KEY = re.compile(r"(?<![A-Za-z0-9_\-])([A-Za-z0-9_\-]+)\s*=")


def _key_lines(text: str) -> dict[str, int]:
    """Map each table and key to the line it is written on: ``rule.1.match.idle_over``.

    Arrays of tables get their index (``rule.0``, ``rule.1``); keys of an inline
    table on one line map to that line.  Enough to point at the line at fault.
    """
    lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    current = ""
    # TOML ends lines at LF only; splitlines() would also split at U+2028 in a string.
    for number, line in enumerate(text.split("\n"), start=1):
        header = _HEADER.match(line)
        if header:
            parts = [p.strip().strip("\"'") for p in header.group(2).strip().split(".")]
            is_array = header.group(1) == "[["
            path = _resolve(parts[:-1] if is_array else parts, counts)
            if is_array:
                path = f"{path}.{parts[-1]}" if path else parts[-1]
                index = counts.get(path, -1) + 1
                counts[path] = index
                path = f"{path}.{index}"
            current = path
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            dotted = ".".join(p.strip("\"'") for p in key.group(1).split("."))
            at = f"{current}.{dotted}" if current else dotted
            lines.setdefault(at, number)
            rest = line[key.end() :]
            if "{" in rest:
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault(f"{at}.{inner.group(1)}", number)
    return lines


def _resolve(parts: list[str], counts: dict[str, int]) -> str:
    """Put the latest index of each array of tables into a header's path."""
    path = ""
    for part in parts:
        path = f"{path}.{part}" if path else part
        if path in counts:
            path = f"{path}.{counts[path]}"
    return path
