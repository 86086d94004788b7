-- Table metadata locks from the metadata_lock_info plugin; it shows granted locks only.
SELECT
    THREAD_ID AS pid,
    TABLE_SCHEMA AS object_schema,
    TABLE_NAME AS object_name,
    1 AS granted
FROM information_schema.METADATA_LOCK_INFO
WHERE LOCK_TYPE = 'Table metadata lock'
