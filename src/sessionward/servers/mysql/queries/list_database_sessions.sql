-- The sessions whose current schema is the one named, never our own.
SELECT p.ID AS pid
FROM information_schema.PROCESSLIST AS p
WHERE CAST(p.DB AS BINARY) = CAST(%(name)s AS BINARY)
    AND p.ID <> CONNECTION_ID()
