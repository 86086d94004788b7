-- Ask one session to end (SIGTERM); no row or false when it is gone.
SELECT pg_catalog.pg_terminate_backend(a.pid)
FROM pg_catalog.pg_stat_activity AS a
WHERE a.pid = %(pid)s::integer
    -- The start time makes a reused pid miss rather than hit a newer session.
    AND (%(started_at)s::timestamptz IS NULL OR a.backend_start = %(started_at)s::timestamptz)
