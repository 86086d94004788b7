-- Give a recorded decision an outcome (recovery, or a decision not acted on) naming its server; nothing when absent or closed.
INSERT IGNORE INTO {table} (`id`, `type`, `time`, `reaper`, `target`, `outcome`, `detail`)
SELECT d.`id`, 'outcome', %(time)s, %(reaper)s, d.`target`, %(outcome)s, %(detail)s
FROM {table} AS d
WHERE d.`id` = %(id)s AND d.`type` = 'decision'
