-- The sessions connected to one database, background processes included, never our own.
SELECT a.pid
FROM pg_catalog.pg_stat_activity AS a
-- Compared as text: a parameter read as type name would be cut to 63 bytes.
WHERE a.datname::text = %(name)s::text
    AND a.pid <> pg_catalog.pg_backend_pid()
