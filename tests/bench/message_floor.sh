#!/usr/bin/env bash
# What Postgres spends on the messages of an unchanged run alone (issue 16, target 5): the same shape as the
# run — three transactions, two of them writing one row, 15 messages (docs/benchmarks.md "Stop 26") — with
# statements that do nothing else, against the same two writes in three messages. pgbench connects like
# the service (TLS when the server offers it). Prints Postgres CPU-ms per run of each shape, PAIRS
# alternating pairs of SECONDS each; the CPU is every `postgres` process's, as `bench-fleet` counts it.
#
#   tests/bench/message_floor.sh [PAIRS] [SECONDS]
set -euo pipefail
pairs=${1:-3}
seconds=${2:-10}
admin=${PGURL_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
db=entrasync_message_floor
url=${admin%/*}/$db
work=$(mktemp -d)
export PGOPTIONS="-c client_min_messages=warning"
trap 'rm -rf "$work"; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT

psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
psql -q "$url" -c "CREATE TABLE counter (id int PRIMARY KEY, n bigint); INSERT INTO counter VALUES (1, 0), (2, 0)"

# The run's shape: the lock session's start (8 messages), the round's end (6), the lock's release (1).
{
    printf 'BEGIN;\nSELECT 1;\nSELECT 1;\nUPDATE counter SET n = n + 1 WHERE id = 1;\nSELECT 1;\nSELECT 1;\nSELECT 1;\nCOMMIT;\n'
    printf 'BEGIN;\nSELECT 1;\nSELECT 1;\nUPDATE counter SET n = n + 1 WHERE id = 2;\nSELECT 1;\nCOMMIT;\n'
    printf 'SELECT 1;\n'
} > "$work/fifteen.sql"
# The same writes, one message per transaction.
cat > "$work/three.sql" <<'SQL'
WITH w AS (UPDATE counter SET n = n + 1 WHERE id = 1 RETURNING 1) SELECT 1, 1, 1, 1, 1, (SELECT count(*) FROM w);
WITH w AS (UPDATE counter SET n = n + 1 WHERE id = 2 RETURNING 1) SELECT 1, 1, 1, (SELECT count(*) FROM w);
SELECT 1;
SQL

# utime + stime + cutime + cstime of every postgres process, in clock ticks (USER_HZ = 100).
postgres_ticks() {
    for pid in $(pgrep -x postgres); do awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || true; done |
        awk '{s += $1} END {print s + 0}'
}

measure() {
    local before after runs
    before=$(postgres_ticks)
    runs=$(pgbench -n -M prepared -c 1 -T "$seconds" -f "$work/$1.sql" "$url" 2>&1 |
        sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    after=$(postgres_ticks)
    awk -v name="$1" -v runs="$runs" -v ticks=$((after - before)) \
        'BEGIN {printf "%-10s %7d runs  %.3f Postgres CPU-ms per run\n", name, runs, ticks * 10 / runs}'
}

for pair in $(seq 1 "$pairs"); do
    if [ $((pair % 2)) -eq 1 ]; then measure fifteen; measure three; else measure three; measure fifteen; fi
done
