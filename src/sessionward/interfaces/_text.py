"""Make text from the server safe to print on a person's terminal.

Query text, application names and client strings are written by any database user. Printed
raw, an escape sequence in them can clear the screen, retitle the window or hide a line.
Human output passes such text through :func:`printable`; JSON and CSV keep it exact.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_WITH_LINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    r"""Return ``text`` with every control character shown as an escape.

    >>> printable("idle\x1b[2J app")
    'idle\\e[2J app'
    >>> printable("line one\nline two")
    'line one\\nline two'
    >>> printable("line one\nline two", keep_newlines=True)
    'line one\nline two'
    """
    pattern = _UNSAFE if keep_newlines else _UNSAFE_WITH_LINES
    if not pattern.search(text):
        return text
    return pattern.sub(_escape, text)
