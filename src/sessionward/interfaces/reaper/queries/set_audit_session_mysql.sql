-- Bound the audit statements' row-lock waits (the socket timeouts bound the rest).
SET SESSION innodb_lock_wait_timeout = %(seconds)s
