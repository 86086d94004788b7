-- End the server session of a connection discarded by a cancellation mid-statement: a PostgreSQL backend whose cancel request came too early (or never) runs its statement on after its client hung up, and notices only when it next reads from the client.
SELECT pg_catalog.pg_terminate_backend(%(pid)s)
