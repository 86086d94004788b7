-- Every session but ours with its InnoDB transaction; ages are seconds against one NOW(6).
SELECT
    p.ID AS pid,
    p.USER AS user,
    p.HOST AS host,
    p.DB AS db,
    p.COMMAND AS command,
    p.STATE AS stage,
    p.INFO AS query,
    -- MySQL has no TIME_MS: whole seconds in the current command.
    p.TIME AS state_age,
    t.trx_state AS trx_state,
    -- trx_started keeps whole seconds only: take one off so an age is never overstated,
    -- but a sleeping transaction is at least as old as its idle time.
    CASE WHEN t.trx_started IS NOT NULL THEN GREATEST(
        TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1000000 - 1,
        CASE WHEN p.COMMAND = 'Sleep' THEN p.TIME ELSE 0 END
    ) END AS xact_age,
    CASE WHEN t.trx_wait_started IS NOT NULL THEN GREATEST(
        TIMESTAMPDIFF(MICROSECOND, t.trx_wait_started, NOW(6)) / 1000000 - 1, 0
    ) END AS wait_age
FROM information_schema.PROCESSLIST AS p
LEFT JOIN information_schema.INNODB_TRX AS t ON t.trx_mysql_thread_id = p.ID
WHERE p.ID <> CONNECTION_ID()
ORDER BY p.ID
