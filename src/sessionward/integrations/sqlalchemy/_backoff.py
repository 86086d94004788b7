"""How long to wait before rerunning a transaction: exponential, with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: The first wait, before jitter.
INITIAL_DELAY_SECONDS = 0.05
#: Each wait is this many times the previous one.
DELAY_FACTOR = 2.0
#: A wait is shortened or lengthened at random by up to this fraction, so
#: clients that failed together do not all come back together.
DELAY_JITTER = 0.2
#: No single wait is longer than this.
MAX_DELAY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """The waits between attempts: ``delay_seconds(1)`` before the second attempt, and so on.

    >>> b = Backoff(jitter=0)
    >>> [b.delay_seconds(n) for n in (1, 2, 3)]
    [0.05, 0.1, 0.2]
    >>> Backoff(jitter=0).delay_seconds(20)
    2.0
    """

    initial_seconds: float = INITIAL_DELAY_SECONDS
    factor: float = DELAY_FACTOR
    jitter: float = DELAY_JITTER
    max_seconds: float = MAX_DELAY_SECONDS

    def delay_seconds(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts (1 for the first)."""
        base = min(self.initial_seconds * self.factor ** max(failures - 1, 0), self.max_seconds)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return base
