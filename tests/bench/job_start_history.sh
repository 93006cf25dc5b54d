#!/usr/bin/env bash
# The job start's statements (src/store/run_lock/start.rs) as pgbench sees them, on a fresh database of
# 1,000 tenants × 100 users with 300 runs of history each, first as loaded and then after FINISHED more
# runs were written the way the service writes them (inserted `running`, then finished), without VACUUM or
# ANALYZE — as on a server with autovacuum off (docs/benchmarks.md "Stop 23"). Prints pgbench's mean
# latency per job start, counting its users (cap 501) and not (cap 0, the size known to the worker).
#
#   tests/bench/job_start_history.sh target/release/entrasync [FINISHED]
set -euo pipefail
bin=${1:?usage: $0 path/to/entrasync [finished runs]}
finished=${2:-20000}
admin=${PGURL_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
db=entrasync_job_start_bench
url=${admin%/*}/$db
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT

psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
ENTRASYNC_DATABASE_URL=$url ENTRASYNC_LOG_FILTER=warn "$bin" migrate > /dev/null
psql -q "$url" <<'SQL'
INSERT INTO tenants (name, entra_tenant_id, cloud) SELECT 't' || i, gen_random_uuid(), 'global' FROM generate_series(1, 1000) i;
INSERT INTO sync_schedules (tenant_id, object_class) SELECT t.id, c::object_class FROM tenants t, unnest(ARRAY['user', 'group', 'device']) c;
INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs) SELECT t.id, 'user', gen_random_uuid(), 1, '{}' FROM tenants t, generate_series(1, 100);
INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, finished_at)
SELECT gen_random_uuid(), t.id, c::object_class, 'delta', 'schedule', 'success', now() - i * interval '5 minutes', now() - i * interval '5 minutes'
FROM generate_series(1, 100) i, tenants t, unnest(ARRAY['user', 'group', 'device']) c;
SQL

# The job start on the lock's session: the lock, the state statement with its parameters bound, the release.
state=$(sed 's/--.*$//' "$(dirname "$0")/../../src/store/sql/run_start_state.sql" | tr '\n' ' ')
for cap in 501 0; do
  bound=${state//\$1/(SELECT entra_tenant_id FROM tenants WHERE id = :t)}
  bound=${bound//\$2/\'user\'}
  bound=${bound//\$3/1398361600}
  bound=${bound//\$4/true}
  bound=${bound//\$5/$cap}
  printf '\\set t random(1, 1000)\nBEGIN;\nSELECT pg_try_advisory_lock(1398361600, :t), set_config(%s, %s, true);\n%s;\nCOMMIT;\nSELECT pg_advisory_unlock_all();\n' \
    "'entrasync.run_lock'" "'1398361600/' || :t" \
    "$bound" > "$work/start-$cap.sql"
done
cat > "$work/run.sql" <<'SQL'
\set t random(1, 1000)
INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at) VALUES (gen_random_uuid(), :t, 'user', 'delta', 'schedule', 'running', now()) RETURNING id \gset
UPDATE sync_runs SET status = 'success', finished_at = now() WHERE id = :id;
SQL

measure() {
  for cap in 501 0; do
    printf '%s, users counted up to %s: ' "$1" "$cap"
    pgbench -n -M prepared -t 2000 -f "$work/start-$cap.sql" "$url" 2>&1 | grep -E "latency average|error"
  done
}
measure "history loaded"
pgbench -n -M prepared -t "$finished" -f "$work/run.sql" "$url" > /dev/null
measure "$finished finished runs"
