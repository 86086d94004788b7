-- Take the reaper's leader lock if nobody holds it: a session-level advisory lock, freed when this connection ends.
SELECT pg_try_advisory_lock(hashtextextended(%(name)s, 0))
