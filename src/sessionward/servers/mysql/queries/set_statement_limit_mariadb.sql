-- Cap every statement of our own session; MariaDB counts seconds, for any statement.
SET SESSION max_statement_time = %(seconds)s
