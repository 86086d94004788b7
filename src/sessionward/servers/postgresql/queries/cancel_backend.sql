-- Ask one backend to cancel its running statement (SIGINT); false when no such backend.
SELECT pg_catalog.pg_cancel_backend(%(pid)s::integer)
