#!/usr/bin/env bash
# Regenerates docs/openapi/<profile>.json for every shipped profile with
# `tollgate openapi` (tests/openapi.rs fails when one is out of date).
# The variables are the ones the profiles need to load; the documents do not
# depend on their values.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/openapi
cargo build --quiet
for conf in conf/*.toml; do
  name=$(basename "$conf" .toml)
  TOLLGATE_ADMIN_TOKEN=check-token-0123456789 TOLLGATE_TURNSTILE_SECRET=check-turnstile-secret \
    target/debug/tollgate openapi --config "$conf" > "docs/openapi/$name.json"
  echo "docs/openapi/$name.json"
done
