"""Deprecated import path: the public one is ``sessionward.psycopg2``.

The implementation lives in this package's modules; importing a name from the
package itself still works, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_PUBLIC = ("apply_timeouts", "psycopg2_kwargs", "set_transaction_timeouts")


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "sessionward.integrations.psycopg2 is deprecated: import from sessionward.psycopg2",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("sessionward.psycopg2"), name)
