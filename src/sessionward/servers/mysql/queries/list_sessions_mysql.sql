-- One read of the whole process list: the clock and optional sources (kind 'clock'), every
-- session but ours with its InnoDB transaction (kind 'session'; ages are seconds against one
-- NOW(6)), and who holds a superuser privilege (kind 'grantee'), in one statement.
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
    'session',
    p.ID,
    p.USER,
    p.HOST,
    p.DB,
    p.COMMAND,
    p.STATE,
    p.INFO,
    -- MySQL has no TIME_MS: whole seconds in the current command.
    p.TIME,
    t.trx_state,
    -- trx_started keeps whole seconds only: take one off so an age is never overstated,
    -- but a sleeping transaction is at least as old as its idle time.
    CASE WHEN t.trx_started IS NOT NULL THEN GREATEST(
        TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000000 - 1,
        CASE WHEN p.COMMAND = 'Sleep' THEN p.TIME ELSE 0 END
    ) END,
    CASE WHEN t.trx_wait_started IS NOT NULL THEN GREATEST(
        TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000000 - 1, 0
    ) END,
    NULL, NULL, NULL, NULL, NULL
FROM information_schema.PROCESSLIST AS p
LEFT JOIN information_schema.INNODB_TRX AS t ON t.trx_mysql_thread_id = p.ID
WHERE p.ID <> CONNECTION_ID()
UNION ALL
-- Per grantee this login may see, whether it holds SUPER (or MySQL's SYSTEM_USER).
SELECT
    'grantee', NULL, GRANTEE, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL,
    MAX(PRIVILEGE_TYPE IN ('SUPER', 'SYSTEM_USER'))
FROM information_schema.USER_PRIVILEGES
GROUP BY GRANTEE
ORDER BY pid
