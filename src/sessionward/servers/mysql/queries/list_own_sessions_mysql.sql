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
    -- MySQL 8 keeps connection attributes, row-lock waits and metadata locks in
    -- performance_schema.
    @@performance_schema AS applications,
    @@performance_schema AS lock_waits,
    @@performance_schema AS metadata_locks,
    NULL AS is_superuser
UNION ALL
SELECT
    'session', p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.STATE, p.INFO, p.TIME,
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
