-- Whether a session ended by KILL CONNECTION is still there: KILL returns at once, and the killed session rolls back and lets go of its locks only when it ends.
SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %(connection_id)s
