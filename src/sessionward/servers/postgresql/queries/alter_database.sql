-- Set whether a database takes new connections and is a template; DDL binds no values, so the name (psycopg.sql.Identifier) and the two flags (psycopg.sql.Literal) are composed into the placeholders below.
ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow_connections} IS_TEMPLATE {is_template}
