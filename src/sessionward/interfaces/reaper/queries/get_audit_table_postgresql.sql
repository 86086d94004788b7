-- Whether the audit table exists (checked first, so a role without CREATE can use a prepared table).
SELECT to_regclass(
    CASE WHEN %(schema)s::text IS NULL THEN quote_ident(%(name)s)
         ELSE quote_ident(%(schema)s) || '.' || quote_ident(%(name)s)
    END
) IS NOT NULL
