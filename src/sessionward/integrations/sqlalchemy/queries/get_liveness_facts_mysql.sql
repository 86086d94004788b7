-- When the server started (a restart changes it) and this session's idle limit in seconds.
SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS started_at,
       @@session.wait_timeout AS idle_limit_seconds
FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime'
