"""mysqlclient (``MySQLdb``): ``Timeouts`` as connection arguments or on an open connection.

::

    import MySQLdb
    from sessionward import Timeouts
    from sessionward.mysqlclient import mysqlclient_kwargs

    timeouts = Timeouts(statement_seconds=30, lock_seconds=5, idle_in_transaction_seconds=60)
    conn = MySQLdb.connect(host=..., **mysqlclient_kwargs(timeouts, flavor="mariadb"))

Nothing here imports mysqlclient, which needs a C client library to build.
"""

from .integrations.mysqlclient._timeouts import apply_timeouts, mysqlclient_kwargs

__all__ = [
    "apply_timeouts",
    "mysqlclient_kwargs",
]
