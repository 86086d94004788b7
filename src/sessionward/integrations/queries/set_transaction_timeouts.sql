-- Set this transaction's timeouts (names and millisecond values as parallel arrays); they end with it.
SELECT pg_catalog.set_config(setting.name, setting.value, true)
FROM unnest(%(names)s::text[], %(values)s::text[]) AS setting(name, value)
