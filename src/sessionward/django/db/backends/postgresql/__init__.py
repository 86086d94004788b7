"""``ENGINE = "sessionward.django.db.backends.postgresql"``: Django's PostgreSQL engine, plus:

- ``OPTIONS["sessionward_timeouts"] = Timeouts(...)`` applied as libpq parameters
  (``OPTIONS["sessionward_server_version"] = 15`` checks them against the version);
- a connection the server ended is noticed on its socket, without a round trip,
  and replaced before use (outside transactions);
- each session names its origin: ``application_name`` is ``<service>[<pid>]@<host>``
  (the service is the program's name, or ``OPTIONS["origin"] = "billing"``) unless
  a name is set already, and each statement ends with a sqlcommenter comment naming
  the thread and the code line that ran it; ``OPTIONS["origin"] = False`` sends neither.
"""
