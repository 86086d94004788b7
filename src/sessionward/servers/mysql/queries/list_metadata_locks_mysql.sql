-- Table metadata locks from performance_schema, granted and pending.
SELECT
    t.PROCESSLIST_ID AS pid,
    m.OBJECT_SCHEMA AS object_schema,
    m.OBJECT_NAME AS object_name,
    m.LOCK_STATUS = 'GRANTED' AS granted
FROM performance_schema.metadata_locks AS m
JOIN performance_schema.threads AS t ON t.THREAD_ID = m.OWNER_THREAD_ID
WHERE m.OBJECT_TYPE = 'TABLE'
    AND m.LOCK_STATUS IN ('GRANTED', 'PENDING')
    AND t.PROCESSLIST_ID IS NOT NULL
