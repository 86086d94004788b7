-- End the server session of a connection discarded by a cancellation mid-statement: a MariaDB/MySQL session runs its statement on (and keeps its transaction's locks) after its client hung up.
KILL CONNECTION %(connection_id)s
