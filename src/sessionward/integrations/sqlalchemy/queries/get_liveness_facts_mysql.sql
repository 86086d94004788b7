-- When the server started, this session's idle limit in seconds, its id (ids restart from 1 with the server) and the client's address as the server sees it (ip:port over TCP).
SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS UNSIGNED) AS started_at,
       @@session.wait_timeout AS idle_limit_seconds,
       CONNECTION_ID() AS connection_id,
       (SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()) AS client_address
FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime'
