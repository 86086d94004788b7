-- Hold this reaper's liveness lock for as long as its audit connection lives: a session-level advisory lock.
SELECT pg_try_advisory_lock(hashtextextended(%(name)s, 0))
