"""``ENGINE = "sessionward.django.db.backends.postgresql"``: Django's PostgreSQL engine, plus:

- ``OPTIONS["sessionward_timeouts"] = Timeouts(...)`` applied as libpq parameters
  (``OPTIONS["sessionward_server_version"] = 15`` checks them against the version);
- a connection the server ended is noticed on its socket, without a round trip,
  and replaced before use (outside transactions);
- ``application_name`` is ``<program>[<pid>]:<thread>`` unless ``OPTIONS`` sets one.
"""
