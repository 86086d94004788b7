-- When the server started, this session's idle limit in seconds, and its id (ids restart from 1 with the server).
SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS started_at,
       @@session.wait_timeout AS idle_limit_seconds,
       CONNECTION_ID() AS connection_id
FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime'
