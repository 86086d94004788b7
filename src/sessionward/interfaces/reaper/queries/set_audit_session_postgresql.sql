-- Bound every audit statement, and make each COMMIT wait for the WAL flush whatever the server default.
SELECT set_config('statement_timeout', %(statement_timeout)s, false),
       set_config('lock_timeout', %(statement_timeout)s, false),
       set_config('synchronous_commit', 'on', false)
