-- Which server this is and which connection is ours, before the ladder picks a dialect.
SELECT VERSION() AS version, @@version_comment AS version_comment, CONNECTION_ID() AS own_pid
