#!/usr/bin/env bash
# Compatibility check of issue 3: the official Microsoft Graph SDK for Python (msgraph-sdk + azure-identity,
# from PyPI, in a virtual environment made on first use) against `entrasync graph-sim` over HTTPS.
# Usage: tests/python/msgraph_sdk_check.sh        (from anywhere; needs python3 and network access to PyPI)
# Env: ENTRASYNC_SDK_VENV overrides the venv location. The default is in the user's cache, outside the
# checkout, so CI's clean clones on one machine install the pinned SDK once (two minutes) instead of every run.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
venv="${ENTRASYNC_SDK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/entrasync/msgraph-sdk-venv}"
# Pinned so a new SDK release cannot change the check's outcome silently.
pins=(msgraph-sdk==1.65.0 azure-identity==1.27.0)

if ! "$venv/bin/python" -c 'import msgraph, azure.identity' 2>/dev/null \
    || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "creating venv $venv with ${pins[*]}"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" > "$venv/.pins"
fi

# The test suite's build, reused (why: tests/checks/promtool.sh).
cargo build --quiet --locked --workspace --all-targets
workdir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ca="$workdir/graph-sim-ca.pem"
./target/debug/entrasync graph-sim --listen "127.0.0.1:$port" --tls-ca-out "$ca" >"$workdir/graph-sim.log" 2>&1 &
sim_pid=$!
cleanup() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT

base="https://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if [ -s "$ca" ] && curl --silent --fail --cacert "$ca" "$base/_sim/apps" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$sim_pid" 2>/dev/null; then echo "graph-sim exited:"; cat "$workdir/graph-sim.log"; exit 1; fi
  sleep 0.1
done

set +e
SIM_BASE="$base" SSL_CERT_FILE="$ca" REQUESTS_CA_BUNDLE="$ca" "$venv/bin/python" tests/python/msgraph_sdk_check.py
status=$?
set -e
if [ "$status" -ne 0 ]; then echo "--- graph-sim log (tail)"; tail -n 40 "$workdir/graph-sim.log"; fi
exit "$status"
