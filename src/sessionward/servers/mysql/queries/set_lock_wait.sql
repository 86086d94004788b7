-- Bound how long our next DDL waits for a metadata lock (whole seconds), so it fails fast.
SET SESSION lock_wait_timeout = %(seconds)s
