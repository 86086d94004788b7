-- Create the reaper's append-only audit table: one row per record, a decision and its outcome share the id.
CREATE TABLE IF NOT EXISTS {table} (
    id          text        NOT NULL,
    type        text        NOT NULL,
    time        timestamptz NOT NULL,
    reaper      text        NOT NULL,
    target      text,
    rule        text,
    action      text,
    dry_run     boolean,
    why         text,
    outcome     text,
    detail      text,
    pid         bigint,
    "user"      text,
    database    text,
    application text,
    server      jsonb,
    session     jsonb,
    PRIMARY KEY (id, type)
)
