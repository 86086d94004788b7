-- One database by name: whether it is ours, its connection and template flags, and our role.
SELECT
    d.datname = pg_catalog.current_database() AS is_current,
    d.datallowconn AS allow_connections,
    d.datistemplate AS is_template,
    CURRENT_USER AS role
FROM pg_catalog.pg_database AS d
WHERE d.datname = %(name)s
