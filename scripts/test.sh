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
# Every checked-in OpenAPI document (docs/openapi/, kept equal to what
# `tollgate openapi` prints by tests/openapi.rs) against the OpenAPI 3.1
# schema, with openapi-spec-validator from PyPI in a venv under target/
# (Debian's pip refuses system installs; deps.sh installs python3-venv).
venv=target/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip show --quiet openapi-spec-validator >/dev/null 2>&1 ||
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7,<1'
"$venv/bin/openapi-spec-validator" docs/openapi/*.json
