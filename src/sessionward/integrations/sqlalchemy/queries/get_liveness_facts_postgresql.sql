-- When the server started (a restart changes it) and this session's idle limit in seconds (NULL before 14); no connection id or client address is needed.
SELECT extract(epoch FROM pg_postmaster_start_time())::float8 AS started_at,
       (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'idle_session_timeout') AS idle_limit_seconds,
       NULL::bigint AS connection_id,
       NULL::text AS client_address
