-- Per grantee this login may see, whether it holds SUPER (or MySQL's SYSTEM_USER).
SELECT
    GRANTEE AS grantee,
    MAX(PRIVILEGE_TYPE IN ('SUPER', 'SYSTEM_USER')) AS is_superuser
FROM information_schema.USER_PRIVILEGES
GROUP BY GRANTEE
