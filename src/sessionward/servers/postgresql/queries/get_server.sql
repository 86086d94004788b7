-- Identify the server: its version text and number, and our own backend pid.
SELECT
    pg_catalog.current_setting('server_version') AS version,
    pg_catalog.current_setting('server_version_num')::integer AS version_num,
    pg_catalog.pg_backend_pid() AS own_pid
