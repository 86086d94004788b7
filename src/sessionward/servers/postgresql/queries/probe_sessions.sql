-- For each given pid still present, a token of its running statement (NULL unless active).
SELECT
    a.pid,
    CASE WHEN a.state = 'active' THEN a.query_start::text END AS token
FROM pg_catalog.pg_stat_activity AS a
WHERE a.pid = ANY (%(pids)s::integer[])
