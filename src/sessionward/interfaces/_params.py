"""Command-line parameter types shared by every command (``ls``, ``terminate``, ``reap``…)."""

from __future__ import annotations

import math
from typing import Any

import click

from ..core import SessionwardError, parse_duration


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A duration such as ``90s``, ``5m`` or ``1h30m``, as float seconds (at most 366 days)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            # Only defaults arrive as floats; they still must be real durations.
            if not math.isfinite(value) or value < 0:
                self.fail(f"not a duration: {value!r}", param, ctx)
            return value
        try:
            return parse_duration(str(value))
        except SessionwardError as error:
            self.fail(str(error), param, ctx)


DURATION = Duration()
