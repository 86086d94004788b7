-- A name's length in bytes in the server encoding, and the most bytes of a name the server keeps (max_identifier_length = NAMEDATALEN - 1): a longer name is silently cut.
SELECT
    pg_catalog.octet_length(%(name)s::text) AS name_bytes,
    pg_catalog.current_setting('max_identifier_length')::integer AS max_bytes
