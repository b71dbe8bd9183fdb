#!/usr/bin/env bash
# Whole-proxy load harness, one command: scripts/bench.sh (or this file).
# Measures, in one run on this machine, on loopback only:
#   1. the sample origin reached directly
#   2. nginx as a plain reverse proxy in front of it
#   3. tollgate on a public route: plain HTTP/1.1, HTTPS HTTP/1.1 (wrk), and
#      HTTP/1.1 vs HTTP/2 over TLS (h2load, one stream per connection)
#   4. tollgate on a public route returning ~2 KB of market data: identity,
#      gzip, br and zstd (compression ratio and CPU cost)
#   5. tollgate on a metered route, memory store
#   6. tollgate on a metered route, Redis store (+ Redis commands per request)
# For every row: the CPU time of the server process(es) under test, from
# /proc/PID/stat (utime + stime over the run), per request.
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

# CPU ticks (utime + stime, every thread) of a process and its children.
TICK=$(getconf CLK_TCK)
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

ORIGIN_PORT=$(port); NGINX_PORT=$(port); REDIS_PORT=$(port)
"$BIN" sample-origin --listen 127.0.0.1:$ORIGIN_PORT 2>"$WORK/origin.log" & PIDS+=($!)
ORIGIN_PID=$!
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
NGINX_PID=$!
wait_port $NGINX_PORT

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
wait_port $REDIS_PORT

# A self-signed certificate for the HTTPS listener (the load tools do not verify).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.pem" \
  -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null

sed "s/^threads = .*/threads = $WORKERS/" benches/load/bench.toml >"$WORK/bench.toml"

start_tollgate() { # $1 name, $2 redis url
  local listen admin metrics
  listen=$(port); admin=$(port); metrics=$(port); TLS_PORT=$(port)
  TOLLGATE_LISTEN=127.0.0.1:$listen TOLLGATE_ADMIN_LISTEN=127.0.0.1:$admin \
  TOLLGATE_METRICS_LISTEN=127.0.0.1:$metrics TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789 \
  TOLLGATE_TLS_LISTEN=127.0.0.1:$TLS_PORT TOLLGATE_TLS_CERT=$WORK/tls.pem TOLLGATE_TLS_KEY=$WORK/tls.key \
  TOLLGATE_ORIGIN=127.0.0.1:$ORIGIN_PORT TOLLGATE_REDIS_URL=$2 RUST_LOG=warn \
    "$BIN" run --config "$WORK/bench.toml" 2>"$WORK/$1.log" & PIDS+=($!)
  GATE_PID=$!
  wait_port $admin; wait_port $listen; wait_port $TLS_PORT
  export TOLLGATE_ADMIN_URL=http://127.0.0.1:$admin TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789
  "$BIN" accounts create bench --plan bench >/dev/null
  TOKEN=$("$BIN" keys create --account bench --name load | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
  PORT=$listen
}

declare -A RPS P50 P99 TOTAL CPU TOOL
# µs of CPU per request: $1 ticks before, $2 ticks after, $3 requests.
per_request() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICK" 'BEGIN { if (n>0) printf "%.1f", (b-a)/hz*1e6/n; else print "-" }'; }
run() { # $1 label, $2 pid under test, $3 url, $4.. extra wrk args
  local label=$1 pid=$2 url=$3; shift 3
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(wrk -t$THREADS -c$CONNS -d$DURATION --latency "$@" "$url")
  after=$(cpu_ticks "$pid")
  RPS[$label]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  TOTAL[$label]=$(awk '/requests in/ {print $1}' <<<"$out")
  P50[$label]=$(awk '$1=="50%" {print $2}' <<<"$out")
  P99[$label]=$(awk '$1=="99%" {print $2}' <<<"$out")
  CPU[$label]=$(per_request "$before" "$after" "${TOTAL[$label]}")
  TOOL[$label]=wrk
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || echo "warning: $label had $non2xx non-2xx responses" >&2
}
run_h2load() { # $1 label, $2 pid under test, $3 url, $4.. extra h2load args
  local label=$1 pid=$2 url=$3; shift 3
  local before after out secs
  secs=${DURATION%s}
  before=$(cpu_ticks "$pid")
  out=$(h2load -t$THREADS -c$CONNS -m1 -D "$secs" "$@" "$url")
  after=$(cpu_ticks "$pid")
  RPS[$label]=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
  TOTAL[$label]=$(awk '/^requests:/ {print $8}' <<<"$out")
  P50[$label]="mean $(awk '/^time for request:/ {print $6}' <<<"$out")"
  P99[$label]="max $(awk '/^time for request:/ {print $5}' <<<"$out")"
  CPU[$label]=$(per_request "$before" "$after" "${TOTAL[$label]}")
  TOOL[$label]=h2load
  local failed; failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  [ "${failed:-0}" = 0 ] || echo "warning: $label had $failed failed requests" >&2
}

run origin "$ORIGIN_PID" "http://127.0.0.1:$ORIGIN_PORT/api/markets"
run nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/api/markets"
start_tollgate mem ""
run public "$GATE_PID" "http://127.0.0.1:$PORT/api/health"
run public_tls "$GATE_PID" "https://127.0.0.1:$TLS_PORT/api/health"
run_h2load public_h1 "$GATE_PID" "https://127.0.0.1:$TLS_PORT/api/health" --h1
run_h2load public_h2 "$GATE_PID" "https://127.0.0.1:$TLS_PORT/api/health"
KLINES="http://127.0.0.1:$PORT/api/klines?limit=22"
declare -A BYTES
for enc in identity gzip br zstd; do
  BYTES[$enc]=$(curl -s -H "Accept-Encoding: $enc" "$KLINES" | wc -c)
  run "klines_$enc" "$GATE_PID" "$KLINES" -H "Accept-Encoding: $enc"
done
run memory "$GATE_PID" "http://127.0.0.1:$PORT/api/markets" -H "Authorization: Bearer $TOKEN"
start_tollgate redis "redis://127.0.0.1:$REDIS_PORT"
# Warm the key cache, then count Redis commands over the measured run only.
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/markets"
redis-cli -p $REDIS_PORT CONFIG RESETSTAT >/dev/null
run redis "$GATE_PID" "http://127.0.0.1:$PORT/api/markets" -H "Authorization: Bearer $TOKEN"
STATS=$(redis-cli -p $REDIS_PORT INFO commandstats)
EVALSHA=$(sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' <<<"$STATS")
GETS=$(sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p' <<<"$STATS")
# The admission script runs one GET itself; GETs beyond that would be the client's.
PER_REQ=$(awk -v e="${EVALSHA:-0}" -v g="${GETS:-0}" -v n="${TOTAL[redis]}" 'BEGIN { if (n>0) printf "%.3f EVALSHA + %.3f other reads (%d requests)", e/n, (g-e)/n, n }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
{
  echo "| setup | tool | requests/s | p50 | p99 | vs origin | vs nginx | server CPU µs/request |"
  echo "|---|---|---|---|---|---|---|---|"
  for k in origin nginx public public_tls public_h1 public_h2 klines_identity klines_gzip klines_br klines_zstd memory redis; do
    case $k in
      origin) name="sample origin, direct";;
      nginx) name="nginx reverse proxy";;
      public) name="tollgate, public route, HTTP/1.1";;
      public_tls) name="tollgate, public route, HTTPS HTTP/1.1";;
      public_h1) name="tollgate, public route, HTTPS HTTP/1.1 (h2load)";;
      public_h2) name="tollgate, public route, HTTPS HTTP/2 (h2load, 1 stream/conn)";;
      klines_*) name="tollgate, public route, 2 KB JSON, ${k#klines_} (${BYTES[${k#klines_}]} bytes)";;
      memory) name="tollgate, metered, memory store";;
      redis) name="tollgate, metered, Redis store";;
    esac
    echo "| $name | ${TOOL[$k]} | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | $(ratio "${RPS[$k]}" "${RPS[origin]}") | $(ratio "${RPS[$k]}" "${RPS[nginx]}") | ${CPU[$k]} |"
  done
  echo
  echo "Compression of the 2 KB body (/api/klines?limit=22, level 3): gzip $(ratio "${BYTES[identity]}" "${BYTES[gzip]}")x, br $(ratio "${BYTES[identity]}" "${BYTES[br]}")x, zstd $(ratio "${BYTES[identity]}" "${BYTES[zstd]}")x; CPU over identity: gzip +$(awk -v a="${CPU[klines_gzip]}" -v b="${CPU[klines_identity]}" 'BEGIN{printf "%.1f", a-b}') µs, br +$(awk -v a="${CPU[klines_br]}" -v b="${CPU[klines_identity]}" 'BEGIN{printf "%.1f", a-b}') µs, zstd +$(awk -v a="${CPU[klines_zstd]}" -v b="${CPU[klines_identity]}" 'BEGIN{printf "%.1f", a-b}') µs per request"
  echo "Redis commands per metered request (INFO commandstats over the Redis run): $PER_REQ"
  echo "(wrk/h2load -t$THREADS -c$CONNS, $DURATION per row; h2load: -m1, p50/p99 columns show its mean and max; $WORKERS proxy worker(s) for nginx and tollgate; $(nproc) cores shared by the load generator, the origin and the proxy; server CPU: utime+stime of the process under test (origin, nginx master+workers, or tollgate) over the run / requests; $(date -u +%Y-%m-%d))"
} | tee benches/load/results.md
