#!/usr/bin/env bash
# Installs the HTTP load generator benches/http.rs drives: wrk (Debian
# package) when apt-get is there, else oha from crates.io. Idempotent.
set -euo pipefail
if command -v wrk >/dev/null 2>&1 || command -v oha >/dev/null 2>&1; then
    echo "load generator present: $(command -v wrk || command -v oha)"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq wrk
else
    cargo install oha --locked
fi
command -v wrk || command -v oha
