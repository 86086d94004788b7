-- Hold this reaper's liveness lock for as long as its audit connection lives: a named lock.
SELECT GET_LOCK(%(name)s, 0)
