-- RDS and Aurora: end a session through the platform's procedure, which runs with the platform's rights (the master user has no CONNECTION ADMIN).
CALL mysql.rds_kill(%(pid)s)
