-- Whether no live reaper holds this liveness lock: take it and let go at once (CASE fixes the order).
SELECT CASE WHEN pg_try_advisory_lock(hashtextextended(%(name)s, 0))
            THEN pg_advisory_unlock(hashtextextended(%(name)s, 0))
            ELSE false
       END
