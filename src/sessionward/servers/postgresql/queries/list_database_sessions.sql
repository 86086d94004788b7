-- The sessions connected to one database, background processes included, never our own.
SELECT a.pid
FROM pg_catalog.pg_stat_activity AS a
WHERE a.datname = %(name)s
    AND a.pid <> pg_catalog.pg_backend_pid()
