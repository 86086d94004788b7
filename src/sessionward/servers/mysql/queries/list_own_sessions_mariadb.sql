-- For a login lacking PROCESS (it sees only its own sessions): the clock and optional
-- sources (kind 'clock'), those sessions without InnoDB data (kind 'session'), and who
-- holds a superuser privilege among the grantees it may see (kind 'grantee').
SELECT
    'clock' AS kind,
    NULL AS pid,
    NULL AS user,
    NULL AS host,
    NULL AS db,
    NULL AS command,
    NULL AS stage,
    NULL AS query,
    NULL AS state_age,
    NULL AS trx_state,
    NULL AS xact_age,
    NULL AS wait_age,
    UTC_TIMESTAMP(6) AS taken_at,
    -- program_name lives in performance_schema, OFF by default on MariaDB.
    @@performance_schema AS applications,
    -- INNODB_LOCK_WAITS is always there (it needs PROCESS).
    1 AS lock_waits,
    EXISTS (
        SELECT 1
        FROM information_schema.PLUGINS
        WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'
    ) AS metadata_locks,
    NULL AS is_superuser
UNION ALL
SELECT
    'session', p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.STATE, p.INFO, p.TIME_MS / 1000,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM information_schema.PROCESSLIST AS p
WHERE p.ID <> CONNECTION_ID()
UNION ALL
SELECT
    'grantee', NULL, GRANTEE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    MAX(PRIVILEGE_TYPE IN ('SUPER', 'SYSTEM_USER'))
FROM information_schema.USER_PRIVILEGES
GROUP BY GRANTEE
ORDER BY pid
