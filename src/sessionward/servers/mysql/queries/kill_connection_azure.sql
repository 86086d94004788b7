-- Azure Database for MySQL: end a session through the platform's procedure.
CALL mysql.az_kill(%(pid)s)
