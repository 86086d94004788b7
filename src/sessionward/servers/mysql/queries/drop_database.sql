-- Drop a schema and all in it; run without bound values, the adapter fills the name placeholder with quote_identifier (backticks, inner ones doubled) and the optional IF EXISTS.
DROP DATABASE {if_exists}{name}
