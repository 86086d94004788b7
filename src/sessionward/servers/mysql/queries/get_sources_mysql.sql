-- The snapshot clock (UTC) and which optional sources this server offers.
SELECT
    UTC_TIMESTAMP(6) AS taken_at,
    -- MySQL 8 keeps connection attributes, row-lock waits and metadata locks in performance_schema.
    @@performance_schema AS applications,
    @@performance_schema AS lock_waits,
    @@performance_schema AS metadata_locks
