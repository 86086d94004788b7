"""What ``record`` and ``history`` read from their options: sizes and moments."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from ...core import ConfigurationError

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", re.IGNORECASE)
_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4, "ti": 1024**4,
}  # fmt: skip


def parse_size(text: str) -> int:
    """A size in bytes: ``512MiB`` (binary), ``500MB`` (decimal), ``1G``, ``65536``.

    >>> [parse_size(s) for s in ("512MiB", "500MB", "1g", "64KiB", "100")]
    [536870912, 500000000, 1000000000, 65536, 100]
    >>> parse_size("lots")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a size: 'lots' (try 512MiB or 500MB)
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigurationError(f"not a size: {text!r} (try 512MiB or 500MB)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_moment(text: str) -> dt.datetime:
    """A moment: ISO 8601 with a space or ``T``, seconds optional; without an offset it
    is local time.  Always returned with its offset.

    >>> parse_moment("2026-12-07 03:12+00:00").isoformat()
    '2026-12-07T03:12:00+00:00'
    >>> parse_moment("2026-12-07T03:12:30Z").isoformat()
    '2026-12-07T03:12:30+00:00'
    >>> parse_moment("yesterday")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a time: 'yesterday' (try ...)
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T][0-9:.]+([+-]\d{2}:?\d{2})?)?", cleaned):
            raise ValueError(text)
        moment = dt.datetime.fromisoformat(cleaned)
    except ValueError:
        raise ConfigurationError(
            f"not a time: {text!r} (try '2026-12-07 03:12' or '2026-12-07T03:12:00+00:00')"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's local time, as `date` prints it
    return moment


class Size(click.ParamType):  # type: ignore[type-arg]
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ConfigurationError as error:
            self.fail(str(error), param, ctx)


class Moment(click.ParamType):  # type: ignore[type-arg]
    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_moment(str(value))
        except ConfigurationError as error:
            self.fail(str(error), param, ctx)


SIZE = Size()
MOMENT = Moment()
