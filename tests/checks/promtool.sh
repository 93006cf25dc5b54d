#!/usr/bin/env bash
# Prometheus checks (issue 6), run by tests/run.sh after the cargo tests:
#   1. the alert rules parse (promtool check rules) and pass their unit tests (promtool test rules);
#   2. the scrape configuration, with its rule files, is valid (promtool check config);
#   3. every query of the Grafana dashboard is valid PromQL (checked as recording rules);
#   4. the text of a real scrape of `entrasync serve` passes `promtool check metrics`.
# Needs promtool (Debian's `prometheus` package: installed here when running as root), curl, psql,
# and Postgres and RabbitMQ on loopback (deploy/local-services.sh). Exit status 0 when all pass.
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly RULES=deploy/prometheus/alerts.yml
readonly RULE_TESTS=deploy/prometheus/alerts_test.yml
readonly SCRAPE_CONFIG=deploy/prometheus/prometheus.yml
readonly DASHBOARD=deploy/grafana/entrasync.json
readonly PG_ADMIN=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres)

say() { echo "promtool.sh: $*" >&2; }
die() {
    echo "promtool.sh: error: $*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------------------------------ promtool
if ! have promtool; then
    if [ "$(id -u)" -eq 0 ] && have apt-get; then
        say "installing promtool (Debian package prometheus)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
        # The package enables a Prometheus server on port 9090; only its promtool is wanted here.
        if [ -d /run/systemd/system ] && have systemctl; then
            systemctl disable --now prometheus >/dev/null 2>&1 || true
        fi
    else
        die "promtool is missing. Install it with: sudo apt-get update && sudo apt-get install -y prometheus" \
            "(Debian/Ubuntu; then 'sudo systemctl disable --now prometheus'), or put promtool from" \
            "https://prometheus.io/download/ on PATH"
    fi
fi
# Small tools a fresh Debian machine may lack; installed the same way when we can.
missing=()
for pair in curl:curl psql:postgresql-client jq:jq; do
    have "${pair%%:*}" || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -eq 0 ] && have apt-get; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
for tool in curl psql jq; do
    have "$tool" || die "$tool is missing (Debian: apt-get install -y ${tool/psql/postgresql-client})"
done

# ------------------------------------------------------------------------------------- rules, config
promtool check rules "$RULES"
promtool test rules "$RULE_TESTS"
promtool check config "$SCRAPE_CONFIG"

WORK=$(mktemp -d)
SERVER_PID=""
DB_NAME="entrasync_promtool_$(date +%s)_$$"
PREFIX="promtool$$x$RANDOM"
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    "${PG_ADMIN[@]}" -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
    # The instance declared its queues and exchanges under PREFIX; remove them when we can.
    if have rabbitmqctl && [ "$(id -u)" -eq 0 ]; then
        for queue in sync.user sync.group sync.device dead; do
            rabbitmqctl -q delete_queue "$PREFIX.$queue" >/dev/null 2>&1 || true
        done
        for exchange in jobs dead; do
            rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$PREFIX.$exchange\">>), false, <<\"promtool.sh\">>)." >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# -------------------------------------------------------------------------------- dashboard queries
# Grafana variables are replaced by sample values; promtool then parses each query as a recording rule.
if have jq; then
    {
        echo "groups:"
        echo "  - name: dashboard"
        echo "    rules:"
        jq -r '[.. | objects | .expr? // empty] | to_entries[]
               | "      - record: dashboard:query_\(.key)\n        expr: \(.value
                   | gsub("\\$__rate_interval"; "5m") | gsub("\\$tenant"; "t")
                   | gsub("\\$instance"; ".*") | gsub("\\$job"; "entrasync") | tojson)"' "$DASHBOARD"
    } >"$WORK/dashboard_rules.yml"
    echo "dashboard queries:" >&2
    promtool check rules "$WORK/dashboard_rules.yml"
else
    die "jq is missing (Debian: apt-get install -y jq); it extracts the dashboard's queries"
fi

# ------------------------------------------------------------------------------------- a real scrape
# The test suite's selection (tests/run.sh), so after it nothing is built again: a build of the package
# alone unifies other features and rebuilt the binary for ~90 s.
cargo build --quiet --locked --workspace --all-targets
# Port 0: the kernel picks a free port and `serve` logs it. (Probing for a free port raced with the
# ephemeral ports of other connections on a busy machine: "Address already in use".)
env -u ENTRASYNC_CONFIG \
    ENTRASYNC_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME" \
    ENTRASYNC_AMQP_PREFIX="$PREFIX" \
    ENTRASYNC_HTTP_LISTEN="127.0.0.1:0" \
    ENTRASYNC_LOG_FORMAT=text \
    target/debug/entrasync serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!

ready=""
PORT=""
for _ in $(seq 1 120); do
    [ -n "$PORT" ] || PORT=$(grep -m1 ' serving ' "$WORK/serve.log" | grep -oE 'port=[0-9]+' | cut -d= -f2 || true)
    if [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
        ready=yes
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
done
[ -n "$ready" ] || {
    cat "$WORK/serve.log" >&2
    die "entrasync serve did not become ready (port: ${PORT:-not logged})"
}

# A tenant with a finished run, so the per-tenant families have series too.
"${PG_ADMIN[@]}" -d "$DB_NAME" <<'SQL'
INSERT INTO tenants (name, entra_tenant_id, cloud) VALUES ('promtool check', gen_random_uuid(), 'global');
INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, finished_at)
SELECT gen_random_uuid(), id, 'user', 'full', 'manual', 'success', now() - interval '1 minute', now() FROM tenants;
SQL

curl -fsS "http://127.0.0.1:$PORT/metrics" >"$WORK/metrics.txt"
for family in entrasync_build_info entrasync_tenants entrasync_sync_staleness_seconds entrasync_queue_messages; do
    grep -q "^# TYPE $family " "$WORK/metrics.txt" || die "the scrape lacks $family:"$'\n'"$(cat "$WORK/metrics.txt")"
done
echo "scrape of entrasync serve ($(grep -c '^# TYPE' "$WORK/metrics.txt") families):" >&2
promtool check metrics <"$WORK/metrics.txt"
echo "  SUCCESS" >&2

kill -TERM "$SERVER_PID"
for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    die "entrasync serve still runs 10 s after SIGTERM"
fi
wait "$SERVER_PID" || die "entrasync serve exited with status $? after SIGTERM"
SERVER_PID=""
