"""Parse and print durations; every duration in sessionward is float seconds."""

from __future__ import annotations

import math
import re

from ._errors import ConfigurationError

_UNIT_SECONDS = {
    "d": 86400.0,
    "h": 3600.0,
    "min": 60.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
#: Largest unit first: a duration names each unit once, in this order.
_UNIT_ORDER = ("d", "h", "m", "s", "ms")
# ASCII digits only: ``\d`` would take other scripts' digits, which ``float`` then reads.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]*(ms|min|s|m|h|d)?[ \t]*", re.IGNORECASE)

#: The longest duration accepted anywhere (366 days): a longer one is a typo, and ``inf``
#: or ``nan`` would make a threshold that never or always matches.
MAX_DURATION_SECONDS = 366 * 86400.0
#: How much of a refused input an error message repeats.
_SHOWN_CHARS = 40


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as ``90s``, ``5m``, ``1h30m`` or ``250ms``.

    A bare number means seconds.  Units go from the largest down, each at most once;
    a duration is at most 366 days.

    >>> parse_duration("90s"), parse_duration("5m"), parse_duration("1h30m")
    (90.0, 300.0, 5400.0)
    >>> parse_duration("250ms"), parse_duration("2.5"), parse_duration("1h 30m")
    (0.25, 2.5, 5400.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a duration: 'soon' (try 90s, 5m, 2h or 1h30m)

    A number without a unit after one with a unit is refused rather than read as seconds,
    and spaces inside a number do not join its digits:

    >>> parse_duration("1h30")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a duration: '1h30' (30 has no unit; ...)
    >>> parse_duration("1 5s")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a duration: '1 5s' (1 has no unit; ...)
    >>> parse_duration("400d")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: duration '400d' is longer than 366 days
    """
    cleaned = text.strip()
    shown = _shown(text)
    if not cleaned:
        raise _not_a_duration(shown)
    position = 0
    total = 0.0
    last_rank = -1
    while position < len(cleaned):
        part = _PART.match(cleaned, position)
        if part is None:
            raise _not_a_duration(shown)
        number, unit = part.group(1), part.group(2)
        position = part.end()
        if unit is None:
            if last_rank >= 0 or cleaned[position : position + 1].isdigit():
                bare = number if len(number) <= 12 else number[:12] + "…"
                raise _not_a_duration(shown, f"{bare} has no unit; a bare number stands alone")
            if position < len(cleaned):
                raise _not_a_duration(shown)
            unit = "s"
        unit = unit.lower()
        rank = _UNIT_ORDER.index("m" if unit == "min" else unit)
        if rank <= last_rank:
            raise _not_a_duration(shown, "units go from days down to ms, each once: 1h30m")
        last_rank = rank
        total += float(number) * _UNIT_SECONDS[unit]
    if total > MAX_DURATION_SECONDS:
        raise ConfigurationError(f"duration {shown} is longer than 366 days")
    return total


def duration_problem(seconds: float) -> str | None:
    """Why ``seconds`` cannot be a duration (nan, inf, negative, over 366 days), or ``None``.

    >>> [duration_problem(s) for s in (0.0, 90.0, float("nan"), -1.0)]
    [None, None, 'is not a duration', 'is negative']
    """
    if not math.isfinite(seconds):
        return "is not a duration"
    if seconds < 0:
        return "is negative"
    if seconds > MAX_DURATION_SECONDS:
        return "is longer than 366 days"
    return None


def _not_a_duration(shown: str, hint: str = "try 90s, 5m, 2h or 1h30m") -> ConfigurationError:
    return ConfigurationError(f"not a duration: {shown} ({hint})")


def _shown(text: str) -> str:
    """``text`` quoted for an error line: escaped, and cut when long."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + "…"


def format_age(seconds: float | None) -> str:
    """Print an age the way a person reads it: two units at most.

    >>> [format_age(s) for s in (None, 0.0123, 4.2, 75, 3725, 200000)]
    ['', '12ms', '4.2s', '1m15s', '1h02m', '2d07h']
    """
    if seconds is None:
        return ""
    # A statement that began after the snapshot's clock reading has a tiny
    # negative age: it is zero.
    seconds = max(seconds, 0.0)
    # Round before choosing the unit, so 0.9996 prints 1.0s rather than 1000ms.
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    tenths = round(seconds * 10)
    if tenths < 100:
        return f"{tenths / 10:.1f}s"
    whole = max(int(seconds), 10)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
