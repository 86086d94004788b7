"""Read the files a user names (policies, snapshots, audit logs) without trusting them.

A path may name a device that never ends (``/dev/zero``), a FIFO that blocks, a file of
gigabytes, bytes that are not UTF-8 or a binary file; each is refused in one line naming
the file, before anything is read without bound.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO

from ..core import ConfigurationError

#: Policies and snapshots are small; a snapshot of 100,000 sessions is about 60 MiB.
MAX_POLICY_BYTES = 1 << 20
MAX_SNAPSHOT_BYTES = 256 << 20


def read_text_file(path: str, *, what: str, max_bytes: int, allow_stdin: bool = False) -> str:
    """Return the UTF-8 text of the regular file at ``path``, at most ``max_bytes`` long.

    ``what`` names the file in errors ("policy", "snapshot"); ``-`` reads standard input when
    ``allow_stdin`` is set, with the same bound.
    """
    if allow_stdin and path == "-":
        if sys.stdin is None:  # started with standard input closed
            raise ConfigurationError(f"cannot read {what} from standard input: it is closed")
        data = _read_bounded(
            sys.stdin.buffer, what=what, name="standard input", max_bytes=max_bytes
        )
        return _decode(data, what=what, name="standard input")
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ConfigurationError(f"cannot read {what} {path}: {error.strerror}") from None
    except ValueError:  # a NUL in the path
        raise ConfigurationError(f"cannot read {what} {path!r}: not a file name") from None
    # Checked before os.fdopen(), which itself refuses a directory with an OSError.
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigurationError(f"cannot read {what} {path}: not a regular file ({_kind(mode)})")
    with os.fdopen(fd, "rb") as file:
        data = _read_bounded(file, what=what, name=path, max_bytes=max_bytes)
    return _decode(data, what=what, name=path)


def require_regular_or_missing(path: str, *, what: str) -> None:
    """Refuse a path that exists but is not a regular file (a device, FIFO or directory)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigurationError(f"cannot use {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ConfigurationError(f"cannot use {what} {path}: not a regular file ({_kind(mode)})")


def _read_bounded(file: BinaryIO, *, what: str, name: str, max_bytes: int) -> bytes:
    try:
        data = file.read(max_bytes + 1)
    except OSError as error:
        raise ConfigurationError(f"cannot read {what} {name}: {error.strerror}") from None
    if data is None:  # a non-blocking stream with nothing yet
        return b""
    if len(data) > max_bytes:
        raise ConfigurationError(
            f"{what} {name} is larger than {max_bytes // (1 << 20)} MiB; refusing to read it"
        )
    return data


def _decode(data: bytes, *, what: str, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{what} {name} is not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x})"
        ) from None
    # NUL is valid UTF-8 but never in a text file: a binary file, refused as such rather
    # than by whatever the parser says about its first odd byte.
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigurationError(f"{what} {name} is not text (byte {nul} is NUL)")
    return text


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
