-- Of the given pids, those this role may not signal, by the rule pg_signal_backend applies: a superuser's session needs a superuser; another role's needs that role's privileges or pg_signal_backend.
SELECT a.pid
FROM pg_catalog.pg_stat_activity AS a
JOIN pg_catalog.pg_roles AS target ON target.oid = a.usesysid
CROSS JOIN (
    SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = CURRENT_USER
) AS me
WHERE a.pid = ANY(%(pids)s::integer[])
    AND a.pid <> pg_catalog.pg_backend_pid()
    AND NOT me.rolsuper
    AND (
        target.rolsuper
        OR NOT (
            pg_catalog.pg_has_role(CURRENT_USER, a.usesysid, 'USAGE')
            OR pg_catalog.pg_has_role(CURRENT_USER, 'pg_signal_backend', 'USAGE')
        )
    )
