#!/usr/bin/env bash
# Whole-proxy load harness, one command: scripts/bench.sh (or this file).
# Measures, in one run on this machine, with wrk on loopback only:
#   1. the sample origin reached directly
#   2. nginx as a plain reverse proxy in front of it
#   3. tollgate on a public route
#   4. tollgate on a metered route, memory store
#   5. tollgate on a metered route, Redis store (+ Redis commands per request)
# Every load is bounded by DURATION and stops by itself.
# Output: a Markdown table on stdout and in benches/load/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/deps.sh bench
cargo build --release --quiet
BIN=$PWD/target/release/tollgate
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
# Proxy workers: nginx worker_processes and tollgate server.threads alike.
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-40000 -n 1; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

ORIGIN_PORT=$(port); NGINX_PORT=$(port); REDIS_PORT=$(port)
"$BIN" sample-origin --listen 127.0.0.1:$ORIGIN_PORT 2>"$WORK/origin.log" & PIDS+=($!)
wait_port $ORIGIN_PORT

mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes $WORKERS;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
wait_port $NGINX_PORT

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
wait_port $REDIS_PORT

sed "s/^threads = .*/threads = $WORKERS/" benches/load/bench.toml >"$WORK/bench.toml"

start_tollgate() { # $1 name, $2 redis url
  local listen admin metrics
  listen=$(port); admin=$(port); metrics=$(port)
  TOLLGATE_LISTEN=127.0.0.1:$listen TOLLGATE_ADMIN_LISTEN=127.0.0.1:$admin \
  TOLLGATE_METRICS_LISTEN=127.0.0.1:$metrics TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789 \
  TOLLGATE_ORIGIN=127.0.0.1:$ORIGIN_PORT TOLLGATE_REDIS_URL=$2 RUST_LOG=warn \
    "$BIN" run --config "$WORK/bench.toml" 2>"$WORK/$1.log" & PIDS+=($!)
  wait_port $admin; wait_port $listen
  export TOLLGATE_ADMIN_URL=http://127.0.0.1:$admin TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789
  "$BIN" accounts create bench --plan bench >/dev/null
  TOKEN=$("$BIN" keys create --account bench --name load | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
  PORT=$listen
}

declare -A RPS P50 P99 TOTAL
run() { # $1 label, $2 url, $3.. extra wrk args
  local label=$1 url=$2; shift 2
  local out; out=$(wrk -t$THREADS -c$CONNS -d$DURATION --latency "$@" "$url")
  RPS[$label]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  TOTAL[$label]=$(awk '/requests in/ {print $1}' <<<"$out")
  P50[$label]=$(awk '$1=="50%" {print $2}' <<<"$out")
  P99[$label]=$(awk '$1=="99%" {print $2}' <<<"$out")
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || echo "warning: $label had $non2xx non-2xx responses" >&2
}

run origin "http://127.0.0.1:$ORIGIN_PORT/api/markets"
run nginx "http://127.0.0.1:$NGINX_PORT/api/markets"
start_tollgate mem ""
run public "http://127.0.0.1:$PORT/api/health"
run memory "http://127.0.0.1:$PORT/api/markets" -H "Authorization: Bearer $TOKEN"
start_tollgate redis "redis://127.0.0.1:$REDIS_PORT"
# Warm the key cache, then count Redis commands over the measured run only.
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/markets"
redis-cli -p $REDIS_PORT CONFIG RESETSTAT >/dev/null
run redis "http://127.0.0.1:$PORT/api/markets" -H "Authorization: Bearer $TOKEN"
STATS=$(redis-cli -p $REDIS_PORT INFO commandstats)
EVALSHA=$(sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' <<<"$STATS")
GETS=$(sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p' <<<"$STATS")
# The admission script runs one GET itself; GETs beyond that would be the client's.
PER_REQ=$(awk -v e="${EVALSHA:-0}" -v g="${GETS:-0}" -v n="${TOTAL[redis]}" 'BEGIN { if (n>0) printf "%.3f EVALSHA + %.3f other reads (%d requests)", e/n, (g-e)/n, n }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
{
  echo "| setup | requests/s | p50 | p99 | vs origin | vs nginx |"
  echo "|---|---|---|---|---|---|"
  for k in origin nginx public memory redis; do
    case $k in
      origin) name="sample origin, direct";;
      nginx) name="nginx reverse proxy";;
      public) name="tollgate, public route";;
      memory) name="tollgate, metered, memory store";;
      redis) name="tollgate, metered, Redis store";;
    esac
    echo "| $name | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | $(ratio "${RPS[$k]}" "${RPS[origin]}") | $(ratio "${RPS[$k]}" "${RPS[nginx]}") |"
  done
  echo
  echo "Redis commands per metered request (INFO commandstats over the Redis run): $PER_REQ"
  echo "(wrk -t$THREADS -c$CONNS -d$DURATION; $WORKERS proxy worker(s) for nginx and tollgate; $(nproc) cores shared by wrk, the origin and the proxy; $(date -u +%Y-%m-%d))"
} | tee benches/load/results.md
