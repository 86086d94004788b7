-- Stop the statement a session runs; the session stays.
KILL QUERY %(pid)s
