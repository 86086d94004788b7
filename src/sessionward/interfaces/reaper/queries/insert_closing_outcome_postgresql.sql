-- Give a recorded decision an outcome (recovery, or a decision not acted on) naming its server; nothing when absent or closed.
INSERT INTO {table} (id, type, time, reaper, target, outcome, detail)
SELECT id, 'outcome', %(time)s, %(reaper)s, target, %(outcome)s, %(detail)s
FROM {table}
WHERE id = %(id)s AND type = 'decision'
ON CONFLICT (id, type) DO NOTHING
