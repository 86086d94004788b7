-- Set this session's timeouts (names and millisecond values as parallel arrays); survives the transaction.
SELECT pg_catalog.set_config(setting.name, setting.value, false)
FROM unnest(%(names)s::text[], %(values)s::text[]) AS setting(name, value)
