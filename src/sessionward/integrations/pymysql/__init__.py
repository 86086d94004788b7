"""Deprecated import path: the public one is ``sessionward.pymysql``.

The implementation lives in this package's modules; importing a name from the
package itself still works, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_PUBLIC = ("apply_timeouts", "pymysql_kwargs")


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "sessionward.integrations.pymysql is deprecated: import from sessionward.pymysql",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("sessionward.pymysql"), name)
