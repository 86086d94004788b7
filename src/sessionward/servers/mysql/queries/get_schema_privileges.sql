-- What this login's own grants allow on one schema: DROP (global, or a schema grant whose pattern matches), and whether a role is in effect (its grants are not read here).
SELECT
    EXISTS (
        SELECT 1
        FROM information_schema.USER_PRIVILEGES AS u
        WHERE u.GRANTEE = me.grantee AND u.PRIVILEGE_TYPE = 'DROP'
    ) OR EXISTS (
        SELECT 1
        FROM information_schema.SCHEMA_PRIVILEGES AS s
        -- A schema grant names a LIKE pattern, with _ and the percent sign as wildcards.
        -- Compared as bytes: the column's collation ignores case, schema names may not,
        -- and a check that passed for FOO on a grant for foo would end FOO's sessions
        -- before the DROP itself is refused.  (Where names are stored lower case, a
        -- mixed-case name is refused here: a refusal before acting is the safe side.)
        WHERE s.GRANTEE = me.grantee AND s.PRIVILEGE_TYPE = 'DROP'
            AND CAST(%(name)s AS BINARY) LIKE CAST(s.TABLE_SCHEMA AS BINARY)
    ) AS may_drop,
    EXISTS (
        SELECT 1 FROM information_schema.ENABLED_ROLES AS r WHERE r.ROLE_NAME IS NOT NULL
    ) AS has_role,
    me.grantee AS grantee
FROM (
    -- CURRENT_USER() is user@host; the privilege tables write 'user'@'host' (a host has no @).
    SELECT CONCAT(
        '''', LEFT(CURRENT_USER(), CHAR_LENGTH(CURRENT_USER())
            - CHAR_LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1),
        '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), ''''
    ) AS grantee
) AS me
