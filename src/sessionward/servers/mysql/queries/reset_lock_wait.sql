-- Give our session back the server's metadata-lock wait limit.
SET SESSION lock_wait_timeout = DEFAULT
