-- InnoDB row-lock waits from performance_schema (kind 'lock_wait'): which session (pid)
-- waits on which (other_pid), and the table (detail).
-- Text as utf8mb4_bin: the parts joined by UNION ALL then agree on one collation.
SELECT
    'lock_wait' AS kind,
    rt.PROCESSLIST_ID AS pid,
    bt.PROCESSLIST_ID AS other_pid,
    NULL AS object_schema,
    NULL AS object_name,
    NULL AS granted,
    CONVERT(CONCAT(l.OBJECT_SCHEMA, '.', l.OBJECT_NAME) USING utf8mb4) COLLATE utf8mb4_bin
        AS detail
FROM performance_schema.data_lock_waits AS w
JOIN performance_schema.threads AS rt ON rt.THREAD_ID = w.REQUESTING_THREAD_ID
JOIN performance_schema.threads AS bt ON bt.THREAD_ID = w.BLOCKING_THREAD_ID
LEFT JOIN performance_schema.data_locks AS l
    ON l.ENGINE = w.ENGINE AND l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID
