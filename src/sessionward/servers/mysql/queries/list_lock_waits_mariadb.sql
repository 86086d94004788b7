-- InnoDB row-lock waits: which session waits on which, and the table of the requested lock.
SELECT
    r.trx_mysql_thread_id AS waiting_pid,
    b.trx_mysql_thread_id AS blocking_pid,
    REPLACE(l.lock_table, '`', '') AS target
FROM information_schema.INNODB_LOCK_WAITS AS w
JOIN information_schema.INNODB_TRX AS r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX AS b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.INNODB_LOCKS AS l ON l.lock_id = w.requested_lock_id
