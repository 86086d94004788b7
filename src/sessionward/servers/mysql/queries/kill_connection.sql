-- End a session; its open transaction rolls back.
KILL CONNECTION %(pid)s
