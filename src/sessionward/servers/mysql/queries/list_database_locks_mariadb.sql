-- Sessions holding a metadata lock on the named schema or anything in it (metadata_lock_info plugin).
SELECT DISTINCT m.THREAD_ID AS pid
FROM information_schema.METADATA_LOCK_INFO AS m
WHERE CAST(m.TABLE_SCHEMA AS BINARY) = CAST(%(name)s AS BINARY)
    AND m.THREAD_ID <> CONNECTION_ID()
