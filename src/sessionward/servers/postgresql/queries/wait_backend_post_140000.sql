-- Wait on the server, up to a timeout, for a backend already told to terminate to exit.
SELECT pg_catalog.pg_terminate_backend(%(pid)s::integer, %(timeout_ms)s::bigint)
