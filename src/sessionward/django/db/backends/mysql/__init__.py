"""``ENGINE = "sessionward.django.db.backends.mysql"``: Django's MySQL/MariaDB engine, plus:

- ``OPTIONS["sessionward_timeouts"] = Timeouts(...)`` joined into ``init_command``
  (``OPTIONS["sessionward_flavor"] = "mariadb"`` or ``"mysql"``, or
  ``OPTIONS["sessionward_server_version"]``, says which server's variables to set);
- with mysqlclient a connection the server ended is noticed on its socket,
  without a round trip; PyMySQL exposes no socket, so a connection idle for
  more than ``OPTIONS["sessionward_ping_after_seconds"]`` (1 s) is pinged
  before use;
- each statement ends with a sqlcommenter comment naming the service (the
  program's name, or ``OPTIONS["origin"] = "billing"``), host, pid, thread and
  the code line that ran it; with PyMySQL the ``program_name`` connection
  attribute is ``<service>[<pid>]@<host>`` (mysqlclient takes no connection
  attributes).  ``OPTIONS["origin"] = False`` sends neither.

Django needs ``MySQLdb``: install mysqlclient, or call
``pymysql.install_as_MySQLdb()`` in your settings.  Like Django's own engine,
``base`` fails to import without it; this package does not.
"""
