"""Deprecated import path: the public one is ``sessionward.psycopg``.

The implementation lives in this package's modules; importing a name from the
package itself still works, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_PUBLIC = (
    "Holder",
    "LeakWarning",
    "OriginWarning",
    "apply_timeouts",
    "async_pool",
    "async_pool_args",
    "async_pool_holders",
    "failover_check",
    "origin_kwargs",
    "origin_pool_args",
    "psycopg_kwargs",
    "set_transaction_timeouts",
)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "sessionward.integrations.psycopg is deprecated: import from sessionward.psycopg",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("sessionward.psycopg"), name)
