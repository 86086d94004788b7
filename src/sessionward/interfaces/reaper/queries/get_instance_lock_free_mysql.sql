-- Whether no live reaper holds this liveness lock.
SELECT IS_FREE_LOCK(%(name)s) = 1
