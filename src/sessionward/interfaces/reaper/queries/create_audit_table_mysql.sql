-- Create the reaper's append-only audit table: one row per record, a decision and its outcome share the id.
CREATE TABLE IF NOT EXISTS {table} (
    `id`          VARCHAR(64) NOT NULL,
    `type`        VARCHAR(16) NOT NULL,
    `time`        DATETIME(6) NOT NULL COMMENT 'UTC',
    `reaper`      VARCHAR(64) NOT NULL,
    `target`      TEXT,
    `rule`        TEXT,
    `action`      VARCHAR(64),
    `dry_run`     BOOLEAN,
    `why`         TEXT,
    `outcome`     VARCHAR(64),
    `detail`      TEXT,
    `pid`         BIGINT,
    `user`        TEXT,
    `database`    TEXT,
    `application` TEXT,
    `server`      JSON,
    `session`     JSON,
    PRIMARY KEY (`id`, `type`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
