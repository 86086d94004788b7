-- Name the role of one backend, and whether it is a superuser, to explain a refusal.
SELECT a.usename, r.rolsuper
FROM pg_catalog.pg_stat_activity AS a
LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.usesysid
WHERE a.pid = %(pid)s::integer
