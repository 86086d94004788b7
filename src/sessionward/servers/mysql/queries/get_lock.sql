-- Take the reaper's leader lock if nobody holds it (no wait): a named lock, freed when this connection ends.
SELECT GET_LOCK(%(name)s, 0) AS acquired
