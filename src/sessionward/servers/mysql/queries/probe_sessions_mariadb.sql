-- For the given ids still present, a token of the running statement: its QUERY_ID, NULL when idle.
SELECT ID AS pid, CASE WHEN COMMAND = 'Sleep' THEN NULL ELSE CAST(QUERY_ID AS CHAR) END AS token
FROM information_schema.PROCESSLIST
WHERE ID IN %(pids)s
