-- The program_name each client sent as a connection attribute (performance_schema only),
-- in the shape of the lock reads it is joined to by UNION ALL (kind 'application').
-- Text as utf8mb4_bin: the parts joined by UNION ALL then agree on one collation.
SELECT
    'application' AS kind,
    PROCESSLIST_ID AS pid,
    NULL AS other_pid,
    NULL AS object_schema,
    NULL AS object_name,
    NULL AS granted,
    CONVERT(ATTR_VALUE USING utf8mb4) COLLATE utf8mb4_bin AS detail
FROM performance_schema.session_connect_attrs
WHERE ATTR_NAME = 'program_name'
