-- Sessions without InnoDB data, for a login lacking PROCESS (it sees only its own sessions).
SELECT
    p.ID AS pid,
    p.USER AS user,
    p.HOST AS host,
    p.DB AS db,
    p.COMMAND AS command,
    p.STATE AS stage,
    p.INFO AS query,
    p.TIME_MS / 1000 AS state_age,
    NULL AS trx_state,
    NULL AS xact_age,
    NULL AS wait_age
FROM information_schema.PROCESSLIST AS p
WHERE p.ID <> CONNECTION_ID()
ORDER BY p.ID
