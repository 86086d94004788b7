-- Every client connection of the pooler, with the server connection it holds (link).
SHOW CLIENTS
