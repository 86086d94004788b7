-- Ask several sessions to end (SIGTERM) in one round trip; one row per session signalled.
WITH chosen AS MATERIALIZED (
    SELECT a.pid
    FROM pg_catalog.pg_stat_activity AS a
    JOIN unnest(%(pids)s::integer[], %(started_ats)s::timestamptz[]) AS w (pid, started_at)
        ON w.pid = a.pid
    -- The start time makes a reused pid miss rather than hit a newer session.
    WHERE w.started_at IS NULL OR a.backend_start = w.started_at
)
SELECT pid FROM chosen WHERE pg_catalog.pg_terminate_backend(pid)
