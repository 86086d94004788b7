-- For the given ids still present: the command and how long it has lasted. For a sleeping
-- session TIME_MS counts from the end of its last statement, so a session still sleeping
-- with a longer TIME_MS than before has run nothing since (MariaDB only: MySQL has no TIME_MS).
SELECT ID AS pid, COMMAND AS command, TIME_MS AS time_ms, UTC_TIMESTAMP(6) AS taken_at
FROM information_schema.PROCESSLIST
WHERE ID IN %(pids)s
