-- The PgBouncer version: "PgBouncer 1.18.0".
SHOW VERSION
