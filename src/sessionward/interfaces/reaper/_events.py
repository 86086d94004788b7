"""One line per reaper event on stderr: readable text, or JSON with ``--log-format json``.

Text lines escape what the server wrote (application names, users, queries in a
rule's reason) with ``printable``, so it cannot move the cursor or hide a line;
JSON keeps every value exact (``json.dumps`` escapes what a terminal would act on).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, TextIO

from ...core import redact_url
from .._text import printable


class EventLog:
    def __init__(self, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
        self.json_lines = json_lines
        self.stream = stream
        #: The last event emitted, or "".
        self.last_event = ""

    def emit(self, event: str, message: str = "", **fields: Any) -> None:
        self.last_event = event
        stream = self.stream or sys.stderr
        time = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        if self.json_lines:
            record = {"time": time, "event": event, **fields}
            if message:
                record["message"] = redact_url(message)
            line = json.dumps(record, default=str, separators=(",", ":"))
        else:
            shown = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v not in (None, ""))
            line = " ".join(p for p in (time, event, printable(redact_url(message)), shown) if p)
        stream.write(line + "\n")
        stream.flush()


def _text(value: Any) -> str:
    text = str(value)
    if " " in text or not text:
        return json.dumps(text)  # quoted, and every control character escaped
    return printable(text)
