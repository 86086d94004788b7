"""What a statement ended with, as seen through ``classify`` and ``translate``.

Shared by the in-process layers and the Django child process, so every layer
is judged by the same code.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sessionward.errors import (
    SessionEnded,
    SessionwardError,
    StatementInterrupted,
    classify,
    translate,
)


@dataclass(frozen=True)
class Failure:
    #: ``classify()`` of the error the layer raised (``None``: not recognised).
    classified: str | None
    #: The class ``translate()`` raised instead (``None``: it let the error through).
    translated: str | None
    #: The error the layer raised, and the driver error inside it.
    raised: str
    driver_error: str
    message: str
    #: ``translate()`` kept the layer's error as ``__cause__``.
    cause_kept: bool
    #: The translated error survived a pickle round trip with its class and code.
    pickles: bool
    code: str | None = None


@dataclass(frozen=True)
class Outcome:
    rows: list[Any] = field(default_factory=list)
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "failure": asdict(self.failure) if self.failure else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        failure = data.get("failure")
        return cls(
            rows=[tuple(row) for row in data.get("rows") or []],
            failure=Failure(**failure) if failure else None,
        )


def outcome_of(run: Callable[[], list[Any]]) -> Outcome:
    """Run a statement under ``translate()`` and describe how it ended."""
    try:
        with translate():
            rows = run()
    except SessionwardError as raised:
        if not isinstance(raised, (StatementInterrupted, SessionEnded)):
            raise  # UnsupportedSetting and friends are the test's business, not an outcome
        return Outcome(failure=_failure(raised))
    except Exception as raised:
        return Outcome(failure=_failure(raised))
    return Outcome(rows=[tuple(row) for row in rows])


def _failure(raised: BaseException) -> Failure:
    ours = isinstance(raised, (StatementInterrupted, SessionEnded))
    original = raised.__cause__ if ours and raised.__cause__ is not None else raised
    classified = classify(original)
    pickles = False
    code = None
    if ours:
        assert isinstance(raised, (StatementInterrupted, SessionEnded))
        copy = pickle.loads(pickle.dumps(raised))
        pickles = type(copy) is type(raised) and copy.code == raised.code
        pickles = pickles and str(copy) == str(raised)
        code = raised.code
    return Failure(
        classified=classified.__name__ if classified else None,
        translated=type(raised).__name__ if ours else None,
        raised=_qualified(type(original)),
        driver_error=_qualified(type(_driver_error(original))),
        message=str(raised)[:300],
        cause_kept=ours and raised.__cause__ is original,
        pickles=pickles,
        code=code,
    )


def _driver_error(error: BaseException) -> BaseException:
    orig = getattr(error, "orig", None)
    if isinstance(orig, BaseException):
        return orig
    if type(error).__module__ == "django.db.utils" and error.__cause__ is not None:
        return error.__cause__
    return error


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_RAISED_BY_LAYER = {"sqlalchemy": "sqlalchemy.exc.", "django": "django.db.utils."}
#: The module a driver raises from, where it differs from the driver's name.
_DRIVER_MODULE = {"mysqlclient": "MySQLdb"}


def assert_ended(failure: Failure | None, expected: type, *, layer: str, driver: str) -> None:
    """``classify`` and ``translate`` both named ``expected`` for what ``layer`` raised."""
    assert failure is not None, f"expected {expected.__name__}, but the statement succeeded"
    assert failure.classified == expected.__name__, failure
    assert failure.translated == expected.__name__, failure
    assert failure.cause_kept, failure
    assert failure.pickles, failure
    module = _DRIVER_MODULE.get(driver, driver)
    prefix = _RAISED_BY_LAYER.get(layer, f"{module}.")
    assert failure.raised.startswith(prefix), failure
    assert failure.driver_error.startswith(f"{module}."), failure
