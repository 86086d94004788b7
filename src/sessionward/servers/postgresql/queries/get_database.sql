-- One database by name: whether it is ours, its connection and template flags, our role, and whether it may drop it (the owner's privileges, which a superuser holds too).
SELECT
    d.datname = pg_catalog.current_database() AS is_current,
    d.datallowconn AS allow_connections,
    d.datistemplate AS is_template,
    CURRENT_USER AS role,
    pg_catalog.pg_has_role(CURRENT_USER, d.datdba, 'USAGE') AS may_drop
FROM pg_catalog.pg_database AS d
-- Compared as text: a parameter read as type name would be cut to 63 bytes.
WHERE d.datname::text = %(name)s::text
