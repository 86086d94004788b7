-- Name this audit connection as the reaped server would list it: connection id and login.
SELECT CONNECTION_ID() AS pid, NULL AS started_at, USER() AS login
