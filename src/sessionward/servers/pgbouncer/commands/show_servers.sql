-- Every server connection of the pooler: its socket, backend pid and client (link).
SHOW SERVERS
