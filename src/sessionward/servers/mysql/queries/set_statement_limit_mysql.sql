-- Cap our own catalog reads; MySQL counts milliseconds, for read-only SELECTs only.
SET SESSION max_execution_time = %(milliseconds)s
