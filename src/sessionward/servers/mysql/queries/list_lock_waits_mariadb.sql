-- InnoDB row-lock waits (kind 'lock_wait'): which session (pid) waits on which (other_pid),
-- and the table of the requested lock (detail).
-- Text as utf8mb4_bin: the parts joined by UNION ALL then agree on one collation.
SELECT
    'lock_wait' AS kind,
    r.trx_mysql_thread_id AS pid,
    b.trx_mysql_thread_id AS other_pid,
    NULL AS object_schema,
    NULL AS object_name,
    NULL AS granted,
    CONVERT(REPLACE(l.lock_table, '`', '') USING utf8mb4) COLLATE utf8mb4_bin AS detail
FROM information_schema.INNODB_LOCK_WAITS AS w
JOIN information_schema.INNODB_TRX AS r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX AS b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.INNODB_LOCKS AS l ON l.lock_id = w.requested_lock_id
