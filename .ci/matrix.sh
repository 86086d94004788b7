#!/usr/bin/env bash
# The version matrix (noxfile.py) in two lanes side by side, then its table.
# The PostgreSQL cells each start a server of their own (and their own
# PgBouncers) and leave MariaDB alone, so they share no server with the other
# lane, whose cells use the system PostgreSQL 15, MariaDB and CI's PgBouncer
# one after another. The PostgreSQL lane's output follows the other's.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .ci/matrix
nox="${NOX:-.venv/bin/nox}"
"$nox" -s postgresql-13 postgresql-14 postgresql-16 >.ci/matrix/postgresql.log 2>&1 &
postgresql_lane=$!
status=0
"$nox" -s python-3.10 python-3.13 wheel sdist || status=1
wait "$postgresql_lane" || status=1
cat .ci/matrix/postgresql.log
.venv/bin/python .ci/matrix_table.py .ci/matrix || status=1
exit "$status"
