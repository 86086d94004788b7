-- The snapshot clock (the row with no pid), then the connection holding each open InnoDB
-- transaction but ours: on a quiet server one tiny read instead of the whole process list.
SELECT UTC_TIMESTAMP(6) AS taken_at, NULL AS pid
UNION ALL
SELECT NULL, t.trx_mysql_thread_id
FROM information_schema.INNODB_TRX AS t
WHERE t.trx_mysql_thread_id <> CONNECTION_ID()
