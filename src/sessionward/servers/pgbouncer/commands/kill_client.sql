-- End one client connection (PgBouncer 1.24+); {client_id} is the id column of SHOW CLIENTS.
KILL_CLIENT {client_id}
