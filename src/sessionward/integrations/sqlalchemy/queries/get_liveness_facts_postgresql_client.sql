-- As get_liveness_facts_postgresql, plus the client's address as the server sees it (ip:port over TCP, NULL over a Unix socket): for drivers whose socket is found from it (asyncpg).
SELECT extract(epoch FROM pg_postmaster_start_time())::float8 AS started_at,
       (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'idle_session_timeout') AS idle_limit_seconds,
       NULL::bigint AS connection_id,
       host(inet_client_addr()) || ':' || inet_client_port() AS client_address
