#!/usr/bin/env bash
# Installs the Debian packages tollgate needs, only those that are missing.
# Usage: scripts/deps.sh build|test|bench
set -euo pipefail
want=(cmake)
case "${1:-build}" in
  # chromium: the headless browser of tests/browser.rs.
  # python3-venv: the venv of openapi-spec-validator (scripts/test.sh).
  test) want+=(redis-server curl openssl chromium python3-venv) ;;
  # nghttp2-client: h2load, the HTTP/2 load generator (wrk speaks HTTP/1.1 only).
  bench) want+=(redis-server nginx wrk curl openssl nghttp2-client) ;;
esac
missing=()
for pkg in "${want[@]}"; do
  cmd=$pkg
  [ "$pkg" = redis-server ] && cmd=redis-server
  [ "$pkg" = nghttp2-client ] && cmd=h2load
  if [ "$pkg" = python3-venv ]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("$pkg")
    continue
  fi
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# oha: the fixed-rate load generator with latency correction (benches only).
if [ "${1:-build}" = bench ] && ! command -v oha >/dev/null 2>&1; then
  echo "installing: oha (cargo install)"
  cargo install --locked --quiet oha
fi
