-- Append one audit record; a record already there (a batch sent again after an unknown COMMIT) is kept as is.
INSERT IGNORE INTO {table} (`id`, `type`, `time`, `reaper`, `target`, `rule`, `action`, `dry_run`,
                            `why`, `outcome`, `detail`, `pid`, `user`, `database`, `application`,
                            `server`, `session`)
VALUES (%(id)s, %(type)s, %(time)s, %(reaper)s, %(target)s, %(rule)s, %(action)s, %(dry_run)s,
        %(why)s, %(outcome)s, %(detail)s, %(pid)s, %(user)s, %(database)s, %(application)s,
        %(server)s, %(session)s)
