#!/usr/bin/env bash
# Headless Chromium and its chromedriver for the console's browser tests
# (tests/integration/console_browser.rs). Debian's packages: the two versions always match.
# Installs them when either is missing; prints both versions.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
chromium --version 2>/dev/null | grep -v '^\s*$' | tail -1
chromedriver --version
