"""Django test runners for the compatibility job that write each test's outcome.

``PlainRunner`` is Django's ``DiscoverRunner``; ``SessionwardRunner`` is ours
(``sessionward.django.TestRunner``). Both only add a result class that records
one outcome per test id and write them as JSON to ``$COMPAT_RESULTS`` when the
suite has run, so ``compat/run.py`` can compare the two runs test by test.
"""

from __future__ import annotations

import json
import os
import unittest
from pathlib import Path
from typing import Any

from django.test.runner import DiscoverRunner  # type: ignore[import-untyped]

from sessionward.django import TestRunner

# Worse outcomes win when a test reports twice (a subtest failure, then
# its tearDown's error).
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "failed": 3, "error": 4}


class RecordingResult(unittest.TextTestResult):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # test id -> [outcome, the error's first line]
        self.outcomes: dict[str, list[str]] = {}

    def _record(self, test: unittest.TestCase, outcome: str, err: Any = None) -> None:
        test_id = test.id()
        if _RANK[outcome] >= _RANK[self.outcomes.get(test_id, ["passed"])[0]]:
            message = f"{err[0].__name__}: {err[1]}" if err else ""
            self.outcomes[test_id] = [outcome, message.strip().split("\n")[0]]

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        # A setUpClass error comes as an _ErrorHolder whose id names the class.
        super().addError(test, err)
        self._record(test, "error", err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "xfailed")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "failed")

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error", err)


class _Recording:
    def get_resultclass(self) -> type[unittest.TextTestResult]:
        # runtests.py's options used by run.py (no --debug-sql, no --pdb)
        # leave Django's own choice at None, so nothing is lost here.
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        base: Any = super()
        result = base.run_suite(suite, **kwargs)
        Path(os.environ["COMPAT_RESULTS"]).write_text(json.dumps(result.outcomes, indent=0))
        return result


class PlainRunner(_Recording, DiscoverRunner):  # type: ignore[misc]
    pass


class SessionwardRunner(_Recording, TestRunner):
    def setup_databases(self, **kwargs: Any) -> Any:
        # A with-sessionward run that silently used Django's engine would prove nothing.
        from django.db import connections  # type: ignore[import-untyped]

        for alias in connections:
            module = type(connections[alias]).__module__
            if not module.startswith("sessionward."):
                raise RuntimeError(f"compat: alias {alias!r} uses {module}, not sessionward's")
        return super().setup_databases(**kwargs)
