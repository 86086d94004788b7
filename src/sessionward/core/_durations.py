"""Parse and print durations; every duration in sessionward is float seconds."""

from __future__ import annotations

import re

from ._errors import ConfigurationError

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as ``90s``, ``5m``, ``1h30m`` or ``250ms``.

    A bare number means seconds.

    >>> parse_duration("90s"), parse_duration("5m"), parse_duration("1h30m")
    (90.0, 300.0, 5400.0)
    >>> parse_duration("250ms"), parse_duration("2.5")
    (0.25, 2.5)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a duration: 'soon' (try 90s, 5m, 2h or 1h30m)
    """
    cleaned = text.strip().replace(" ", "")
    position = 0
    total = 0.0
    matched = False
    while position < len(cleaned):
        part = _PART.match(cleaned, position)
        if part is None or part.end() == position:
            matched = False
            break
        unit = (part.group(2) or "s").lower()
        total += float(part.group(1)) * _UNIT_SECONDS[unit]
        position = part.end()
        matched = True
    if not matched:
        raise ConfigurationError(f"not a duration: {text!r} (try 90s, 5m, 2h or 1h30m)")
    return total


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
