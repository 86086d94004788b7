-- The program_name each client sent as a connection attribute (performance_schema only).
SELECT PROCESSLIST_ID AS pid, ATTR_VALUE AS application
FROM performance_schema.session_connect_attrs
WHERE ATTR_NAME = 'program_name'
