"""psycopg2: ``Timeouts`` as connection arguments, or applied to an open connection.

::

    import psycopg2
    from sessionward import Timeouts
    from sessionward.psycopg2 import psycopg2_kwargs

    conn = psycopg2.connect(url, **psycopg2_kwargs(Timeouts(statement_seconds=30)))
"""

from .integrations.psycopg2._timeouts import apply_timeouts, psycopg2_kwargs

__all__ = [
    "apply_timeouts",
    "psycopg2_kwargs",
]
