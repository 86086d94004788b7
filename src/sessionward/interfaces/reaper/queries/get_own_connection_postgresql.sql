-- Name this audit connection as the reaped server would list it: backend pid, start and login.
SELECT a.pid, a.backend_start, a.usename
FROM pg_catalog.pg_stat_activity AS a
WHERE a.pid = pg_catalog.pg_backend_pid()
