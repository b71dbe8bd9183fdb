#!/usr/bin/env bash
# Whole-proxy load harness, one command: scripts/bench.sh (or this file).
# Measures, in one run on this machine, on loopback only:
#   - the sample origin reached directly;
#   - nginx as a plain reverse proxy in front of it (the reference);
#   - bare Pingora (examples/bare_proxy.rs: a ProxyHttp with no tollgate
#     logic, same server settings): the floor under tollgate;
#   - tollgate on a public route, on a metered route with the embedded store,
#     and on a metered route with Redis (+ Redis commands per request);
#   - the public and memory-store rows again on a second tollgate with the
#     JSON access log on (to a file in the work dir): the access log's CPU
#     cost per request is the difference;
#   - with BASELINE_BIN=path/to/an/older/tollgate, the same three tollgate rows
#     for that binary too, in the same rounds (before/after in one run);
#   - latency at a fixed rate (half of nginx's measured peak) with oha's
#     latency correction, for nginx, bare Pingora and the Redis pipeline;
#   - tollgate's public route over HTTPS (HTTP/1.1 and HTTP/2) and with
#     compressed ~2 KB responses.
# For every row: requests/s, p50, p99, the ratio to nginx, and the CPU time
# (utime + stime from /proc/PID/stat, every thread) per request of each
# process: the proxy, Redis and the origin.
# The main rows run ROUNDS times, alternating, and the table shows medians.
# Every load is bounded by DURATION and stops by itself.
# Output: a Markdown table on stdout and in benches/load/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/deps.sh bench
cargo build --release --quiet --bin tollgate --example bare_proxy
BIN=$PWD/target/release/tollgate
BARE=$PWD/target/release/examples/bare_proxy
BASELINE_BIN=${BASELINE_BIN:-}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
# Proxy workers: nginx worker_processes, tollgate server.threads, bare Pingora threads.
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
LOAD=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD" 'BEGIN { exit !(l >= 1.0) }' && echo "warning: 1-minute load is $LOAD: other work will skew the figures" >&2

# Free loopback ports below the ephemeral range.
port() { python3 -c 'import socket,random
for _ in range(100):
    p = random.randint(30000, 32767); s = socket.socket()
    try: s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# CPU ticks (utime + stime, every thread) of processes and their children.
TICK=$(getconf CLK_TCK)
cpu_ticks() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
# µs of CPU per request: $1 ticks before, $2 ticks after, $3 requests.
per_request() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICK" 'BEGIN { if (n>0) printf "%.1f", (b-a)/hz*1e6/n; else print "-" }'; }

ORIGIN_PORT=$(port); NGINX_PORT=$(port); REDIS_PORT=$(port); BARE_PORT=$(port)
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

"$BARE" 127.0.0.1:$BARE_PORT 127.0.0.1:$ORIGIN_PORT "$WORKERS" 2>"$WORK/bare.log" & PIDS+=($!)
BARE_PID=$!
wait_port $BARE_PORT

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
REDIS_PID=$!
wait_port $REDIS_PORT

# A self-signed certificate for the HTTPS listener (the load tools do not verify).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.pem" \
  -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
sed "s/^threads = .*/threads = $WORKERS/" benches/load/bench.toml >"$WORK/bench.toml"

# Starts a tollgate: $1 name, $2 binary, $3 redis url ("" for the embedded
# store), $4 profile (default: bench.toml). Sets PID_$1, PORT_$1, TLS_$1 and
# TOKEN_$1.
start_tollgate() {
  local name=$1 bin=$2 listen admin metrics tls pid token
  listen=$(port); admin=$(port); metrics=$(port); tls=$(port)
  TOLLGATE_LISTEN=127.0.0.1:$listen TOLLGATE_ADMIN_LISTEN=127.0.0.1:$admin \
  TOLLGATE_METRICS_LISTEN=127.0.0.1:$metrics TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789 \
  TOLLGATE_TLS_LISTEN=127.0.0.1:$tls TOLLGATE_TLS_CERT=$WORK/tls.pem TOLLGATE_TLS_KEY=$WORK/tls.key \
  TOLLGATE_ORIGIN=127.0.0.1:$ORIGIN_PORT TOLLGATE_REDIS_URL=$3 RUST_LOG=warn \
    "$bin" run --config "${4:-$WORK/bench.toml}" 2>"$WORK/$name.log" & PIDS+=($!)
  pid=$!
  wait_port $admin; wait_port $listen; wait_port $tls
  TOLLGATE_ADMIN_URL=http://127.0.0.1:$admin TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789 \
    "$bin" accounts create "bench-$name" --plan bench >/dev/null
  token=$(TOLLGATE_ADMIN_URL=http://127.0.0.1:$admin TOLLGATE_ADMIN_TOKEN=bench-admin-token-0123456789 \
    "$bin" keys create --account "bench-$name" --name load | sed -n 's/.*"token": "\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "$name: no key was created" >&2; exit 1; }
  # One request warms the key cache before any measured run.
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$listen/api/markets"
  printf -v "PID_$name" %s "$pid"; printf -v "PORT_$name" %s "$listen"
  printf -v "TLS_$name" %s "$tls"; printf -v "TOKEN_$name" %s "$token"
}
start_tollgate mem "$BIN" ""
start_tollgate redis "$BIN" "redis://127.0.0.1:$REDIS_PORT"
# The same memory-store tollgate with the access log on (every request
# logged), from a profile of its own: a baseline binary may not know the section.
ACCESS_LOG=$WORK/access.log
{ cat "$WORK/bench.toml"; printf '\n[access_log]\npath = "%s"\nformat = "json"\nsample = 1.0\n' "$ACCESS_LOG"; } >"$WORK/bench-access-log.toml"
start_tollgate memlog "$BIN" "" "$WORK/bench-access-log.toml"
if [ -n "$BASELINE_BIN" ]; then
  start_tollgate basemem "$BASELINE_BIN" ""
  start_tollgate baseredis "$BASELINE_BIN" "redis://127.0.0.1:$REDIS_PORT"
fi

# One measured load. Results per label, one value per round (space-separated).
declare -A RPS P50 P99 PROXY REDIS ORIG TOOL LAST_N
add() { eval "$1[\$2]=\"\${$1[\$2]:-}\${$1[\$2]:+ }\$3\""; }
# $1 label, $2 proxy pid, $3 url, $4.. extra wrk args
run() {
  local label=$1 pid=$2 url=$3; shift 3
  local p0 r0 o0 out n non2xx
  p0=$(cpu_ticks "$pid"); r0=$(cpu_ticks "$REDIS_PID"); o0=$(cpu_ticks "$ORIGIN_PID")
  out=$(timeout 120 wrk -t$THREADS -c$CONNS -d$DURATION --latency "$@" "$url")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  LAST_N[$label]=$n
  add PROXY "$label" "$(per_request "$p0" "$(cpu_ticks "$pid")" "$n")"
  add REDIS "$label" "$(per_request "$r0" "$(cpu_ticks "$REDIS_PID")" "$n")"
  add ORIG "$label" "$(per_request "$o0" "$(cpu_ticks "$ORIGIN_PID")" "$n")"
  add RPS "$label" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  add P50 "$label" "$(awk '$1=="50%" {print $2}' <<<"$out")"
  add P99 "$label" "$(awk '$1=="99%" {print $2}' <<<"$out")"
  TOOL[$label]=wrk
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  [ -z "$non2xx" ] || { echo "$label: $non2xx non-2xx responses" >&2; exit 1; }
}
# Fixed-rate load with latency correction: $1 label, $2 pid, $3 rate, $4 url, $5.. extra oha args
run_rate() {
  local label=$1 pid=$2 rate=$3 url=$4; shift 4
  local p0 r0 o0 json n
  p0=$(cpu_ticks "$pid"); r0=$(cpu_ticks "$REDIS_PID"); o0=$(cpu_ticks "$ORIGIN_PID")
  json=$(timeout 120 oha -z "$DURATION" -q "$rate" -c "$CONNS" --latency-correction --no-tui \
    --output-format json "$@" "$url")
  n=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["statusCodeDistribution"].get("200",0))' <<<"$json")
  add PROXY "$label" "$(per_request "$p0" "$(cpu_ticks "$pid")" "$n")"
  add REDIS "$label" "$(per_request "$r0" "$(cpu_ticks "$REDIS_PID")" "$n")"
  add ORIG "$label" "$(per_request "$o0" "$(cpu_ticks "$ORIGIN_PID")" "$n")"
  read -r rps p50 p99 other < <(python3 -c 'import json,sys
d=json.load(sys.stdin); s=d["statusCodeDistribution"]; l=d["latencyPercentiles"]
other=sum(v for k,v in s.items() if k!="200")
print("%.0f %.0fµs %.0fµs %d" % (d["summary"]["requestsPerSec"], l["p50"]*1e6, l["p99"]*1e6, other))' <<<"$json")
  add RPS "$label" "$rps"; add P50 "$label" "$p50"; add P99 "$label" "$p99"
  TOOL[$label]="oha -q $rate"
  [ "$other" = 0 ] || { echo "$label: $other non-200 responses" >&2; exit 1; }
}
# h2load, one stream per connection: $1 label, $2 pid, $3 url, $4.. extra args
run_h2load() {
  local label=$1 pid=$2 url=$3; shift 3
  local p0 out n failed
  p0=$(cpu_ticks "$pid")
  out=$(timeout 120 h2load -t$THREADS -c$CONNS -m1 -D "${DURATION%s}" "$@" "$url")
  n=$(awk '/^requests:/ {print $8}' <<<"$out")
  add PROXY "$label" "$(per_request "$p0" "$(cpu_ticks "$pid")" "$n")"
  add REDIS "$label" "-"; add ORIG "$label" "-"
  add RPS "$label" "$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")"
  add P50 "$label" "mean $(awk '/^time for request:/ {print $6}' <<<"$out")"
  add P99 "$label" "max $(awk '/^time for request:/ {print $5}' <<<"$out")"
  TOOL[$label]=h2load
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  [ "${failed:-0}" = 0 ] || { echo "$label: $failed failed requests" >&2; exit 1; }
}

# Redis commands per metered request, from INFO commandstats.
redis_calls() { redis-cli -p $REDIS_PORT INFO commandstats | awk -F'[:=,]' '/^cmdstat_/ {s+=$3} END {print s+0}'; }
redis_evalsha() { redis-cli -p $REDIS_PORT INFO commandstats | awk -F'[:=,]' '/^cmdstat_evalsha:/ {print $3}'; }
declare -A CALLS
metered() { # $1 label, $2 name of the tollgate
  local pid port token
  pid=PID_$2; port=PORT_$2; token=TOKEN_$2
  run "$1" "${!pid}" "http://127.0.0.1:${!port}/api/markets" -H "Authorization: Bearer ${!token}"
}

# Access log rows: the file is emptied before each (a run writes a few hundred
# MB at most), and the lines it got are counted (last round).
declare -A LOG_LINES
logged() { # $1 label, then what run takes
  local label=$1
  : >"$ACCESS_LOG"
  run "$@"
  sleep 0.2 # the writer flushes every 50 ms
  LOG_LINES[$label]=$(wc -l <"$ACCESS_LOG")
}

MAIN="origin nginx bare public public_log memory memory_log redis"
[ -z "$BASELINE_BIN" ] || MAIN="$MAIN base_public base_memory base_redis"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  run origin "$ORIGIN_PID" "http://127.0.0.1:$ORIGIN_PORT/api/markets"
  run nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/api/markets"
  run bare "$BARE_PID" "http://127.0.0.1:$BARE_PORT/api/markets"
  run public "$PID_mem" "http://127.0.0.1:$PORT_mem/api/health"
  logged public_log "$PID_memlog" "http://127.0.0.1:$PORT_memlog/api/health"
  metered memory mem
  logged memory_log "$PID_memlog" "http://127.0.0.1:$PORT_memlog/api/markets" -H "Authorization: Bearer $TOKEN_memlog"
  c0=$(redis_calls); e0=$(redis_evalsha)
  metered redis redis
  CALLS[redis]="$(( $(redis_calls) - c0 )) $(( $(redis_evalsha) - e0 ))"
  if [ -n "$BASELINE_BIN" ]; then
    run base_public "$PID_basemem" "http://127.0.0.1:$PORT_basemem/api/health"
    metered base_memory basemem
    c0=$(redis_calls); e0=$(redis_evalsha)
    metered base_redis baseredis
    CALLS[base_redis]="$(( $(redis_calls) - c0 )) $(( $(redis_evalsha) - e0 ))"
  fi
done

median() { tr ' ' '\n' <<<"$1" | sort -g | awk '{v[NR]=$1} END {print (NR ? v[int((NR+1)/2)] : "-")}'; }
# p50/p99 carry units (wrk: 1.23ms, 456.78us): the median of the values in µs.
median_us() { tr ' ' '\n' <<<"$1" | awk '/ms$/ {sub("ms",""); print $1*1000; next} /us$/ {sub("us",""); print $1+0; next} /µs$/ {sub("µs",""); print $1+0; next} /s$/ {sub("s",""); print $1*1e6}' \
  | sort -g | awk '{v[NR]=$1} END {if (NR) printf "%.0f µs", v[int((NR+1)/2)]; else print "-"}'; }
NGINX_RPS=$(median "${RPS[nginx]}")
# Half of nginx's peak (what the issue asks for), and a quarter of it: oha
# costs more CPU per request than wrk, so on 2 shared cores half of nginx's
# wrk peak can be more than a proxy can take next to oha.
RATE=$(awk -v r="$NGINX_RPS" 'BEGIN { printf "%d", r / 2 }')
RATE4=$(awk -v r="$NGINX_RPS" 'BEGIN { printf "%d", r / 4 }')
echo "fixed-rate rows at $RATE and $RATE4 requests/s (1/2 and 1/4 of nginx's median peak)" >&2
for q in "$RATE" "$RATE4"; do
  s=""; [ "$q" = "$RATE4" ] && s=4
  run_rate "rate${s}_nginx" "$NGINX_PID" "$q" "http://127.0.0.1:$NGINX_PORT/api/markets"
  run_rate "rate${s}_bare" "$BARE_PID" "$q" "http://127.0.0.1:$BARE_PORT/api/markets"
  run_rate "rate${s}_redis" "$PID_redis" "$q" "http://127.0.0.1:$PORT_redis/api/markets" -H "Authorization: Bearer $TOKEN_redis"
  [ -z "$BASELINE_BIN" ] || run_rate "rate${s}_base_redis" "$PID_baseredis" "$q" \
    "http://127.0.0.1:$PORT_baseredis/api/markets" -H "Authorization: Bearer $TOKEN_baseredis"
done

run public_tls "$PID_mem" "https://127.0.0.1:$TLS_mem/api/health"
run_h2load public_h1 "$PID_mem" "https://127.0.0.1:$TLS_mem/api/health" --h1
run_h2load public_h2 "$PID_mem" "https://127.0.0.1:$TLS_mem/api/health"
KLINES="http://127.0.0.1:$PORT_mem/api/klines?limit=22"
declare -A BYTES
for enc in identity gzip br zstd; do
  BYTES[$enc]=$(curl -s -H "Accept-Encoding: $enc" "$KLINES" | wc -c)
  run "klines_$enc" "$PID_mem" "$KLINES" -H "Accept-Encoding: $enc"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "-" }'; }
name_of() {
  case $1 in
    origin) echo "sample origin, direct";;
    nginx) echo "nginx reverse proxy";;
    bare) echo "bare Pingora (examples/bare_proxy.rs)";;
    public) echo "tollgate, public route";;
    public_log) echo "tollgate, public route, access log on";;
    memory) echo "tollgate, key + GCRA, memory store";;
    memory_log) echo "tollgate, key + GCRA, memory store, access log on";;
    redis) echo "tollgate, key + GCRA, Redis";;
    base_public) echo "baseline tollgate, public route";;
    base_memory) echo "baseline tollgate, key + GCRA, memory store";;
    base_redis) echo "baseline tollgate, key + GCRA, Redis";;
    rate_*|rate4_*) local r; r=$(name_of "${1#*_}"); echo "$r, fixed rate";;
    public_tls) echo "tollgate, public route, HTTPS HTTP/1.1";;
    public_h1) echo "tollgate, public route, HTTPS HTTP/1.1 (h2load)";;
    public_h2) echo "tollgate, public route, HTTPS HTTP/2 (h2load, 1 stream/conn)";;
    klines_*) echo "tollgate, public route, 2 KB JSON, ${1#klines_} (${BYTES[${1#klines_}]} bytes)";;
  esac
}
ROWS="$MAIN rate_nginx rate_bare rate_redis"
[ -z "$BASELINE_BIN" ] || ROWS="$ROWS rate_base_redis"
ROWS="$ROWS rate4_nginx rate4_bare rate4_redis"
[ -z "$BASELINE_BIN" ] || ROWS="$ROWS rate4_base_redis"
ROWS="$ROWS public_tls public_h1 public_h2 klines_identity klines_gzip klines_br klines_zstd"
{
  echo "| setup | tool | requests/s | p50 | p99 | vs nginx | vs bare Pingora | proxy CPU µs/req | Redis CPU µs/req | proxy + Redis | origin CPU µs/req |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for k in $ROWS; do
    rps=$(median "${RPS[$k]}"); proxy=$(median "${PROXY[$k]}"); redis=$(median "${REDIS[$k]}")
    case "${P50[$k]}" in mean*) p50=${P50[$k]}; p99=${P99[$k]};; *) p50=$(median_us "${P50[$k]}"); p99=$(median_us "${P99[$k]}");; esac
    both=$(awk -v a="$proxy" -v b="$redis" 'BEGIN { if (b == "-") b = 0; printf "%.1f", a + b }')
    case $k in rate*) vs_n="-"; vs_b="-";; *) vs_n=$(ratio "$rps" "$NGINX_RPS"); vs_b=$(ratio "$rps" "$(median "${RPS[bare]}")");; esac
    echo "| $(name_of "$k") | ${TOOL[$k]} | $rps | $p50 | $p99 | $vs_n | $vs_b | $proxy | $redis | $both | $(median "${ORIG[$k]}") |"
  done
  echo
  for k in redis base_redis; do
    [ -n "${CALLS[$k]:-}" ] || continue
    read -r calls evalsha <<<"${CALLS[$k]}"
    n=${LAST_N[$k]}
    echo "Redis, \"$(name_of "$k")\", last round: $n requests, $calls commands run by Redis ($evalsha EVALSHA, the rest inside the script), $(awk -v c="$calls" -v n="$n" 'BEGIN { printf "%.3f", c/n }') per request ($(awk -v c="$evalsha" -v n="$n" 'BEGIN { printf "%.3f", c/n }') EVALSHA: one script call admits $(awk -v c="$evalsha" -v n="$n" 'BEGIN { if (c > 0) printf "%.1f", n/c; else print "-" }') requests on average)."
  done
  echo
  for pair in "public public_log" "memory memory_log"; do
    read -r off on <<<"$pair"
    a=$(median "${PROXY[$off]}"); b=$(median "${PROXY[$on]}")
    echo "Access log, \"$(name_of "$off")\": proxy CPU $a µs/req without, $b µs/req with: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.1f", b - a }') µs/req ($(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0) printf "%+.0f%%", (b - a) / a * 100; else print "-" }')); requests/s $(median "${RPS[$off]}") and $(median "${RPS[$on]}"); last round: ${LOG_LINES[$on]} lines for ${LAST_N[$on]} requests."
  done
  echo
  echo "Compression of the 2 KB body (/api/klines?limit=22, level 3): gzip $(ratio "${BYTES[identity]}" "${BYTES[gzip]}")x, br $(ratio "${BYTES[identity]}" "${BYTES[br]}")x, zstd $(ratio "${BYTES[identity]}" "${BYTES[zstd]}")x."
  echo
  echo "(wrk -t$THREADS -c$CONNS, $DURATION per row; main rows: median of $ROUNDS alternating rounds; fixed-rate rows: oha -c$CONNS --latency-correction at $RATE and $RATE4 requests/s; h2load -m1 shows its mean and max latency; $WORKERS worker(s) for nginx, bare Pingora and tollgate; $(nproc) cores shared by the load generator, origin, proxy and Redis; 1-minute load $LOAD at start; CPU: utime+stime from /proc/PID/stat over the run / 200 responses; $(date -u +%Y-%m-%d))"
} | tee benches/load/results.md
