-- Bound every later statement of this session so a sick server cannot hang us.
SELECT
    pg_catalog.set_config('statement_timeout', %(statement_timeout)s, false),
    pg_catalog.set_config('lock_timeout', %(lock_timeout)s, false)
