-- A new pooled session's idle limit (idle_session_timeout, PostgreSQL 14+; NULL before) and both ends of its TCP connection as the server sees them (NULL over a Unix socket), for the drivers' own async pools.
SELECT (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'idle_session_timeout') AS idle_limit_seconds,
       host(inet_client_addr()) || ':' || inet_client_port() AS client_address,
       inet_server_port() AS server_port
