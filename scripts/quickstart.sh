#!/usr/bin/env bash
# Runs tollgate on the embedded store in front of the bundled sample origin,
# creates a demo account and key, and prints what to curl. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
command -v curl >/dev/null 2>&1 || scripts/deps.sh test
cargo build --release
BIN=target/release/tollgate

export TOLLGATE_LISTEN=${TOLLGATE_LISTEN:-127.0.0.1:8080}
export TOLLGATE_ORIGIN=${TOLLGATE_ORIGIN:-127.0.0.1:8000}
export TOLLGATE_ADMIN_LISTEN=${TOLLGATE_ADMIN_LISTEN:-127.0.0.1:9090}
export TOLLGATE_METRICS_LISTEN=${TOLLGATE_METRICS_LISTEN:-127.0.0.1:9091}
export TOLLGATE_ADMIN_TOKEN=${TOLLGATE_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
export TOLLGATE_ADMIN_URL="http://$TOLLGATE_ADMIN_LISTEN"
export TOLLGATE_REDIS_URL=${TOLLGATE_REDIS_URL:-}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

"$BIN" sample-origin --listen "$TOLLGATE_ORIGIN" 2>/tmp/tollgate-origin.log &
ORIGIN_PID=$!
"$BIN" run --config conf/quickstart.toml 2>/tmp/tollgate.log &
TOLLGATE_PID=$!
trap 'kill $ORIGIN_PID $TOLLGATE_PID 2>/dev/null || true' EXIT INT TERM
wait_port "$TOLLGATE_ORIGIN"
wait_port "$TOLLGATE_ADMIN_LISTEN"
wait_port "$TOLLGATE_LISTEN"

"$BIN" accounts create demo --plan standard >/dev/null
KEY_JSON=$("$BIN" keys create --account demo --name quickstart)
TOKEN=$(printf '%s' "$KEY_JSON" | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')

cat <<TXT

tollgate is running on http://$TOLLGATE_LISTEN in front of the sample origin on $TOLLGATE_ORIGIN
(embedded store: state is lost when it stops). Logs: /tmp/tollgate.log

  # public, never metered
  curl -i http://$TOLLGATE_LISTEN/api/health
  # anonymous: 30 requests/min per client IP
  curl -i http://$TOLLGATE_LISTEN/api/markets
  # with the demo key (shown only now): 120 requests/min
  curl -i -H 'Authorization: Bearer $TOKEN' 'http://$TOLLGATE_LISTEN/api/klines?symbol=BTCUSDT&limit=5'
  # a bad key is a 401, never anonymous
  curl -i -H 'Authorization: Bearer tg_nope' http://$TOLLGATE_LISTEN/api/markets
  # metrics
  curl -s http://$TOLLGATE_METRICS_LISTEN/metrics | grep tollgate_requests_total

Operator CLI (admin API on $TOLLGATE_ADMIN_LISTEN):
  export TOLLGATE_ADMIN_URL=$TOLLGATE_ADMIN_URL TOLLGATE_ADMIN_TOKEN=$TOLLGATE_ADMIN_TOKEN
  $BIN keys list --account demo
  $BIN keys usage <key id>

Ctrl-C stops tollgate and the sample origin.
TXT
wait $TOLLGATE_PID
