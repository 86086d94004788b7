-- Whether the audit table exists (checked first, so a login without CREATE can use a prepared table).
SELECT COUNT(*) > 0
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = COALESCE(%(schema)s, DATABASE()) AND TABLE_NAME = %(name)s
