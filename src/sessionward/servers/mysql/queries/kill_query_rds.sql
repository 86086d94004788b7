-- RDS and Aurora: stop the statement a session runs, through the platform's procedure.
CALL mysql.rds_kill_query(%(pid)s)
