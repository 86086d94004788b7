-- One schema by name: whether it exists (as this login may see) and the schema our session uses.
SELECT
    EXISTS (
        SELECT 1
        FROM information_schema.SCHEMATA
        WHERE CAST(SCHEMA_NAME AS BINARY) = CAST(%(name)s AS BINARY)
    ) AS present,
    DATABASE() AS current_schema
