-- Decisions without an outcome, with the reaper that wrote each, oldest first.
SELECT d.id, d.reaper
FROM {table} AS d
WHERE d.type = 'decision'
  AND NOT EXISTS (SELECT 1 FROM {table} AS o WHERE o.id = d.id AND o.type = 'outcome')
ORDER BY d.time
