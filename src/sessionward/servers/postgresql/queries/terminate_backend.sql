-- Ask one backend to end its session (SIGTERM); false when no such backend.
SELECT pg_catalog.pg_terminate_backend(%(pid)s::integer)
