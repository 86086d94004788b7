-- Table metadata locks from the metadata_lock_info plugin (kind 'metadata_lock'); it
-- shows granted locks only.
-- Text as utf8mb4_bin: the parts joined by UNION ALL then agree on one collation.
SELECT
    'metadata_lock' AS kind,
    THREAD_ID AS pid,
    NULL AS other_pid,
    CONVERT(TABLE_SCHEMA USING utf8mb4) COLLATE utf8mb4_bin AS object_schema,
    CONVERT(TABLE_NAME USING utf8mb4) COLLATE utf8mb4_bin AS object_name,
    1 AS granted,
    NULL AS detail
FROM information_schema.METADATA_LOCK_INFO
WHERE LOCK_TYPE = 'Table metadata lock'
