-- The snapshot clock (UTC) and which optional sources this server offers.
SELECT
    UTC_TIMESTAMP(6) AS taken_at,
    -- program_name lives in performance_schema, OFF by default on MariaDB.
    @@performance_schema AS applications,
    -- INNODB_LOCK_WAITS is always there (it needs PROCESS).
    1 AS lock_waits,
    EXISTS (
        SELECT 1
        FROM information_schema.PLUGINS
        WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'
    ) AS metadata_locks
