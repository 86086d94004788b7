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
                    pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                    '#' || l.relation || ' in database ' || coalesce(d.datname, l.database::text)
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
    LEFT JOIN pg_catalog.pg_database AS d ON d.oid = l.database
    -- Relation oids only name a relation in our own database (or a shared catalog).
    LEFT JOIN pg_catalog.pg_class AS c
        ON c.oid = l.relation
        AND (l.database = 0 OR d.datname = pg_catalog.current_database())
    LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE NOT l.granted
    ORDER BY l.pid
)
SELECT
    clock.now AS taken_at,
    a.pid,
    a.backend_type,
    a.datid IS NOT NULL AND a.usesysid IS NOT NULL AS has_owner,
    a.datname,
    a.usename,
    a.application_name,
    pg_catalog.host(a.client_addr) AS client_addr,
    a.client_port,
    a.state,
    extract(epoch FROM clock.now - a.backend_start)::float8 AS session_age,
    extract(epoch FROM clock.now - a.xact_start)::float8 AS xact_age,
    extract(epoch FROM clock.now - a.state_change)::float8 AS state_age,
    extract(epoch FROM clock.now - a.query_start)::float8 AS query_age,
    a.wait_event_type,
    a.wait_event,
    extract(epoch FROM clock.now - w.waitstart)::float8 AS wait_age,
    w.target AS wait_target,
    CASE WHEN a.wait_event_type = 'Lock' THEN pg_catalog.pg_blocking_pids(a.pid) END AS blocked_by,
    a.query,
    r.rolsuper,
    pg_catalog.age(a.backend_xmin) AS xmin_age
FROM clock
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid <> pg_catalog.pg_backend_pid()
LEFT JOIN lock_waits AS w ON w.pid = a.pid AND a.wait_event_type = 'Lock'
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.usesysid
