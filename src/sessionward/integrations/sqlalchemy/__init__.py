"""SQLAlchemy: timeouts for every connection of an engine, and classification by code,
through its public events."""

from ._errors import classify_errors
from ._timeouts import apply_timeouts

__all__ = ["apply_timeouts", "classify_errors"]
