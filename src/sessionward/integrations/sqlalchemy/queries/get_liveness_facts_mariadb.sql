-- When the server started (a restart changes it) and this session's idle limit in seconds.
SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS started_at,
       @@session.wait_timeout AS idle_limit_seconds
FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'
