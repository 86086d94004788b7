"""PyMySQL: ``Timeouts`` as connection arguments, or applied to an open connection.

::

    import pymysql
    from sessionward import Timeouts
    from sessionward.pymysql import pymysql_kwargs

    timeouts = Timeouts(statement_seconds=30, lock_seconds=5, idle_in_transaction_seconds=60)
    conn = pymysql.connect(host=..., **pymysql_kwargs(timeouts, flavor="mariadb"))
"""

from .integrations.pymysql._timeouts import apply_timeouts, pymysql_kwargs

__all__ = [
    "apply_timeouts",
    "pymysql_kwargs",
]
