-- For dry runs: whether this login's own grants let it end other users' sessions, whether a role is in effect (its grants are not read here), and the user name KILL compares with a session's.
SELECT
    EXISTS (
        SELECT 1
        FROM information_schema.USER_PRIVILEGES AS u
        WHERE u.GRANTEE = me.grantee
            AND u.PRIVILEGE_TYPE IN ('SUPER', 'CONNECTION ADMIN', 'CONNECTION_ADMIN')
    ) AS may_kill_any,
    EXISTS (
        SELECT 1 FROM information_schema.ENABLED_ROLES AS r WHERE r.ROLE_NAME IS NOT NULL
    ) AS has_role,
    LEFT(USER(), CHAR_LENGTH(USER()) - CHAR_LENGTH(SUBSTRING_INDEX(USER(), '@', -1)) - 1)
        AS user_name
FROM (
    -- CURRENT_USER() is user@host; the privilege tables write 'user'@'host' (a host has no @).
    SELECT CONCAT(
        '''', LEFT(CURRENT_USER(), CHAR_LENGTH(CURRENT_USER())
            - CHAR_LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1),
        '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), ''''
    ) AS grantee
) AS me
