-- The managed platforms' kill procedures this login can see: how sessionward tells RDS/Aurora and Azure from a self-managed server.
SELECT ROUTINE_NAME AS name
FROM information_schema.ROUTINES
WHERE ROUTINE_SCHEMA = 'mysql'
    AND ROUTINE_TYPE = 'PROCEDURE'
    AND ROUTINE_NAME IN ('rds_kill', 'rds_kill_query', 'az_kill', 'az_kill_query')
