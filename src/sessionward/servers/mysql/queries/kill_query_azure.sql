-- Azure Database for MySQL: stop the statement a session runs, through the platform's procedure.
CALL mysql.az_kill_query(%(pid)s)
