-- Table metadata locks from performance_schema, granted and pending (kind 'metadata_lock').
-- Text as utf8mb4_bin: the parts joined by UNION ALL then agree on one collation.
SELECT
    'metadata_lock' AS kind,
    t.PROCESSLIST_ID AS pid,
    NULL AS other_pid,
    CONVERT(m.OBJECT_SCHEMA USING utf8mb4) COLLATE utf8mb4_bin AS object_schema,
    CONVERT(m.OBJECT_NAME USING utf8mb4) COLLATE utf8mb4_bin AS object_name,
    m.LOCK_STATUS = 'GRANTED' AS granted,
    NULL AS detail
FROM performance_schema.metadata_locks AS m
JOIN performance_schema.threads AS t ON t.THREAD_ID = m.OWNER_THREAD_ID
WHERE m.OBJECT_TYPE = 'TABLE'
    AND m.LOCK_STATUS IN ('GRANTED', 'PENDING')
    AND t.PROCESSLIST_ID IS NOT NULL
