"""SQLAlchemy: timeouts for every connection of an engine, classification by code,
whole-transaction retry and hardened pools, through its public events."""

from ...core import ConcurrentUse
from ._async_transaction import transaction
from ._backoff import Backoff
from ._errors import classify_errors
from ._harden import FallbackWarning, Holder, LeakWarning, PoolTimeout, QueuePool, harden, holders
from ._pooled import apply_transaction_timeouts
from ._timeouts import apply_timeouts

__all__ = [
    "Backoff",
    "ConcurrentUse",
    "FallbackWarning",
    "Holder",
    "LeakWarning",
    "PoolTimeout",
    "QueuePool",
    "apply_timeouts",
    "apply_transaction_timeouts",
    "classify_errors",
    "harden",
    "holders",
    "transaction",
]
