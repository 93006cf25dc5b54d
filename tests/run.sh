#!/usr/bin/env bash
# The whole test suite: brings Postgres and RabbitMQ up on loopback, then runs every test.
# Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/local-services.sh

# Integration tests mostly wait on I/O (Postgres, RabbitMQ, HTTP): more threads than cores keep both busy.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}"
cargo test --locked --workspace --all-targets "$@"

# A client we did not write against the Graph emulator (issue 3's compatibility check).
echo "== tests/python/msgraph_sdk_check.sh"
bash tests/python/msgraph_sdk_check.sh

for check in tests/checks/*.sh; do
    [ -e "$check" ] || continue
    echo "== $check"
    bash "$check"
done
