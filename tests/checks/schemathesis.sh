#!/usr/bin/env bash
# Property-based run against the operator API's own OpenAPI document (issue 13): schemathesis generates
# requests for every operation of /api/v1/openapi.json — valid ones and deliberately broken ones — and
# checks that no answer is a 5xx and that every answer (status, content type, body) conforms to the
# document. Runs `entrasync serve` (api role) against a scratch database, with a seeded tenant, profile
# and runs so that reads have something to return. Test connection and the permission check call the
# identity platform (no internet here, and each call retries for seconds): tests/integration/api_v1.rs
# covers them against the Graph emulator instead. Needs Python 3 with venv, curl, psql, and Postgres and
# RabbitMQ on loopback (deploy/local-services.sh). Exit status 0 when every check passes.
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly SCHEMATHESIS_VERSION=4.32.5
readonly VENV=target/schemathesis-venv
readonly PG_ADMIN=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres)
# Enough examples per operation to find the edge cases, few enough to keep CI quick.
readonly MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"

say() { echo "schemathesis.sh: $*" >&2; }
die() {
    echo "schemathesis.sh: error: $*" >&2
    exit 1
}

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d)
SERVER_PID=""
DB_NAME="entrasync_schemathesis_$(date +%s)_$$"
PREFIX="schemathesis$$x$RANDOM"
TOKEN="es_schemathesis-$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
SECRETS_KEY=$(head -c 32 /dev/urandom | base64)
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    "${PG_ADMIN[@]}" -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The test suite's build, reused (why: tests/checks/promtool.sh).
cargo build --quiet --locked --workspace --all-targets
env -u ENTRASYNC_CONFIG \
    ENTRASYNC_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB_NAME" \
    ENTRASYNC_AMQP_PREFIX="$PREFIX" \
    ENTRASYNC_HTTP_LISTEN="127.0.0.1:0" \
    ENTRASYNC_SERVE_ROLES=api \
    ENTRASYNC_ADMIN_TOKEN="$TOKEN" \
    ENTRASYNC_SECRETS_KEY="$SECRETS_KEY" \
    ENTRASYNC_LOG_FORMAT=text \
    target/debug/entrasync serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!

PORT=""
for _ in $(seq 1 120); do
    [ -n "$PORT" ] || PORT=$(grep -m1 ' serving ' "$WORK/serve.log" | grep -oE 'port=[0-9]+' | cut -d= -f2 || true)
    if [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.5
done
curl -fsS "http://127.0.0.1:${PORT:-0}/readyz" >/dev/null 2>&1 || {
    cat "$WORK/serve.log" >&2
    die "entrasync serve did not become ready (port: ${PORT:-not logged})"
}
BASE="http://127.0.0.1:$PORT"

# Something to read: a profile (through the API, so its secret is encrypted), a tenant, runs, objects.
curl -fsS -X POST "$BASE/api/v1/credential-profiles" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' \
    -d '{"name":"schemathesis","client_id":"00000000-0000-4000-8000-000000000001","secret":"not-a-real-secret"}' >/dev/null
"${PG_ADMIN[@]}" -d "$DB_NAME" <<'SQL'
INSERT INTO tenants (name, entra_tenant_id, cloud, credential_profile_id)
SELECT 'schemathesis tenant', gen_random_uuid(), 'global', id FROM credential_profiles;
INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, finished_at, total, error)
SELECT gen_random_uuid(), t.id, c::object_class, 'full', 'api', s::run_status,
       now() - make_interval(mins => n), now() - make_interval(mins => n) + interval '5 seconds', n,
       CASE WHEN s = 'failed' THEN 'Graph answered 403' END
FROM tenants t, unnest(ARRAY['user', 'group', 'device']) c,
     unnest(ARRAY['success', 'failed', 'held']) s, generate_series(1, 20) n;
INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs)
SELECT t.id, 'user', gen_random_uuid(), n, jsonb_build_object('displayName', 'User ' || n)
FROM tenants t, generate_series(1, 60) n;
SQL

say "running against $BASE/api/v1/openapi.json ($MAX_EXAMPLES examples per operation)"
set +e
"$VENV/bin/schemathesis" run "$BASE/api/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed 13 \
    --workers 2 \
    --phases examples,coverage,fuzzing \
    --suppress-health-check all \
    --request-timeout 30 \
    --exclude-path-regex '(test-connection|permissions/check)$' \
    --report junit --report-dir "$WORK/report" 2>&1 | tee "$WORK/schemathesis.log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    say "schemathesis found failures (exit $status); the server log follows"
    tail -n 60 "$WORK/serve.log" >&2
    exit "$status"
fi
say "no 5xx, every answer conforms to the document"
