-- List every session but our own, with ages, lock waits and blockers (PostgreSQL 13: no waitstart).
-- Ages use one clock_timestamp() so they agree with each other; pg_locks rows
-- are read only where not granted and pg_blocking_pids() runs only for lock
-- waiters, which keeps the read flat at a thousand sessions.
WITH clock AS MATERIALIZED (
    SELECT pg_catalog.clock_timestamp() AS now
),
lock_waits AS MATERIALIZED (
    SELECT DISTINCT ON (l.pid)
        l.pid,
        NULL::timestamptz AS waitstart,
        CASE
            WHEN l.locktype IN ('relation', 'extend', 'page', 'tuple') THEN
                l.locktype || ' ' || coalesce(
                    -- A relation oid names a relation only in our own database
                    -- (or a shared catalog); look it up by index, row by row,
                    -- since only waiting rows get here.
                    (
                        SELECT pg_catalog.quote_ident(n.nspname) || '.'
                            || pg_catalog.quote_ident(c.relname)
                        FROM pg_catalog.pg_class AS c
                        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
                        WHERE c.oid = l.relation
                            AND l.database IN (0, (
                                SELECT d.oid FROM pg_catalog.pg_database AS d
                                WHERE d.datname = pg_catalog.current_database()
                            ))
                    ),
                    '#' || l.relation || ' in database ' || coalesce(
                        (SELECT d.datname FROM pg_catalog.pg_database AS d WHERE d.oid = l.database),
                        l.database::text
                    )
                )
            WHEN l.locktype = 'transactionid' THEN 'transactionid ' || l.transactionid
            WHEN l.locktype = 'virtualxid' THEN 'virtualxid ' || l.virtualxid
            WHEN l.locktype = 'advisory' AND l.objsubid = 1 THEN
                'advisory ' || ((l.classid::bigint << 32) | l.objid::bigint)
            WHEN l.locktype = 'advisory' THEN 'advisory ' || l.classid || ',' || l.objid
            WHEN l.locktype = 'object' THEN
                'object ' || l.classid::pg_catalog.regclass || ' ' || l.objid
            ELSE l.locktype
        END AS target
    FROM pg_catalog.pg_locks AS l
    WHERE NOT l.granted
    ORDER BY l.pid
)
-- The clock row (pid NULL) carries the snapshot time; session rows leave it NULL.
SELECT
    clock.now AS taken_at,
    NULL::integer AS pid,
    NULL::text AS backend_type,
    NULL::boolean AS has_owner,
    NULL::name AS datname,
    NULL::name AS usename,
    NULL::text AS application_name,
    NULL::text AS client_addr,
    NULL::integer AS client_port,
    NULL::text AS state,
    NULL::float8 AS session_age,
    NULL::float8 AS xact_age,
    NULL::float8 AS state_age,
    NULL::float8 AS query_age,
    NULL::text AS wait_event_type,
    NULL::text AS wait_event,
    NULL::float8 AS wait_age,
    NULL::text AS wait_target,
    NULL::integer[] AS blocked_by,
    NULL::text AS query,
    NULL::boolean AS rolsuper,
    NULL::integer AS xmin_age,
    NULL::timestamptz AS backend_start
FROM clock
UNION ALL
SELECT
    NULL,
    a.pid,
    a.backend_type,
    a.datid IS NOT NULL AND a.usesysid IS NOT NULL,
    a.datname,
    a.usename,
    a.application_name,
    pg_catalog.host(a.client_addr),
    a.client_port,
    a.state,
    extract(epoch FROM clock.now - a.backend_start)::float8,
    extract(epoch FROM clock.now - a.xact_start)::float8,
    extract(epoch FROM clock.now - a.state_change)::float8,
    extract(epoch FROM clock.now - a.query_start)::float8,
    a.wait_event_type,
    a.wait_event,
    extract(epoch FROM clock.now - w.waitstart)::float8,
    w.target,
    CASE WHEN a.wait_event_type = 'Lock' THEN pg_catalog.pg_blocking_pids(a.pid) END,
    a.query,
    r.rolsuper,
    pg_catalog.age(a.backend_xmin),
    a.backend_start
FROM clock
CROSS JOIN pg_catalog.pg_stat_activity AS a
LEFT JOIN lock_waits AS w ON w.pid = a.pid AND a.wait_event_type = 'Lock'
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.usesysid
WHERE a.pid <> pg_catalog.pg_backend_pid()
    -- A partial snapshot reads only the sessions asked for, or only those in a transaction.
    AND (%(pids)s::integer[] IS NULL OR a.pid = ANY (%(pids)s::integer[]))
    AND (NOT %(transactions_only)s::boolean OR a.xact_start IS NOT NULL)
