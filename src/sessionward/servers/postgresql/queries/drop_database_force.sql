-- Drop a database, the server ending any session still on it (13+); the name is composed with psycopg.sql.Identifier, the optional IF EXISTS with psycopg.sql.SQL.
DROP DATABASE {if_exists}{name} WITH (FORCE)
