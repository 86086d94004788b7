-- InnoDB row-lock waits from performance_schema: which session waits on which, and the table.
SELECT
    rt.PROCESSLIST_ID AS waiting_pid,
    bt.PROCESSLIST_ID AS blocking_pid,
    CONCAT(l.OBJECT_SCHEMA, '.', l.OBJECT_NAME) AS target
FROM performance_schema.data_lock_waits AS w
JOIN performance_schema.threads AS rt ON rt.THREAD_ID = w.REQUESTING_THREAD_ID
JOIN performance_schema.threads AS bt ON bt.THREAD_ID = w.BLOCKING_THREAD_ID
LEFT JOIN performance_schema.data_locks AS l
    ON l.ENGINE = w.ENGINE AND l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID
