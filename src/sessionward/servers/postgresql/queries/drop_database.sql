-- Drop a database, failing (55006) if any session uses it; the name is composed with psycopg.sql.Identifier, the optional IF EXISTS with psycopg.sql.SQL.
DROP DATABASE {if_exists}{name}
