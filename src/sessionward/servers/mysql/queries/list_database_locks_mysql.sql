-- Sessions holding a metadata lock on the named schema or anything in it (performance_schema).
SELECT DISTINCT t.PROCESSLIST_ID AS pid
FROM performance_schema.metadata_locks AS m
JOIN performance_schema.threads AS t ON t.THREAD_ID = m.OWNER_THREAD_ID
WHERE CAST(m.OBJECT_SCHEMA AS BINARY) = CAST(%(name)s AS BINARY)
    AND m.LOCK_STATUS = 'GRANTED'
    AND t.PROCESSLIST_ID IS NOT NULL
    AND t.PROCESSLIST_ID <> CONNECTION_ID()
