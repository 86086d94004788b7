-- For the given ids still present, a token of the running statement: start second and text hash.
SELECT
    ID AS pid,
    CASE WHEN COMMAND = 'Sleep' THEN NULL
        ELSE CONCAT(UNIX_TIMESTAMP() - TIME, ':', CRC32(COALESCE(INFO, '')))
    END AS token
FROM information_schema.PROCESSLIST
WHERE ID IN %(pids)s
