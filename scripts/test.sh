#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests (real
# tollgate processes, a real redis-server, the sample origin), and a check of
# every shipped config. Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# With the variables the shipped profiles require: conf/mobiusquant.toml
# refuses to start without its siteverify secret.
for conf in conf/*.toml; do
  TOLLGATE_ADMIN_TOKEN=check-token-0123456789 TOLLGATE_TURNSTILE_SECRET=check-turnstile-secret \
    cargo run --quiet -- check --config "$conf"
done
