#!/usr/bin/env bash
# session-api side by side with its Node.js peer, express-session + connect-dynamodb, on the
# same local DynamoDB. A benchmark, not a test: it prints figures and asserts none of them.
#
#   bench/peer.sh          # about 2 minutes after the first build
#
# What it does, all on 127.0.0.1, stopping everything it started on exit:
# - builds session-api in release, installs the pinned Node app (bench/peer/package-lock.json)
#   and, if missing, wrk (Debian's package);
# - starts moto (scripts/moto_server.py, through bench/peer/moto_counting.py, which counts
#   DynamoDB calls by operation); each app gets its own table;
# - session-api: the release binary as a Lambda function behind the runtime emulator
#   (`cargo lambda watch --only-lambda-apis`), one instance per connection, as Lambda runs it;
#   its cold start (process start -> first response through the emulator, COLD_STARTS runs);
# - express-session: `node bench/peer/server.js`, one process;
# - then for each app in turn, never both at once: SESSIONS sessions created (GET /counter
#   without a cookie), HEALTH seconds of GET /health (the HTTP path without any session),
#   WARMUP seconds of the mix, then DURATION measured seconds of the mix: the same request
#   sequence for both apps, 80 % GET /session (read-only) and 20 % GET /counter (changes the
#   session), spread over the sessions, replayed by wrk (bench/peer/mix.lua) on CONNECTIONS
#   connections;
# - prints requests per second, p50/p99 latency, DynamoDB calls per request by operation and
#   peak RSS for both with the ratios session-api / express-session, the cold start, and the
#   stripped binary size.
#
# Knobs (environment): DURATION=20 WARMUP=5 HEALTH=5 (seconds), SESSIONS=50, CONNECTIONS=1,
# COLD_STARTS=5.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"

DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-5}"
HEALTH="${HEALTH:-5}"
SESSIONS="${SESSIONS:-50}"
CONNECTIONS="${CONNECTIONS:-1}"
COLD_STARTS="${COLD_STARTS:-5}"
PEER="$ROOT/bench/peer"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/peer-bench.XXXXXX")"

STARTED_PIDS=()
stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
trap stop_started EXIT

wait_for_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1; logs are in $WORK" >&2
  exit 1
}

# ---- tools and builds, before anything is started ----
ensure_venv
if ! command -v wrk >/dev/null; then
  if [[ $EUID -ne 0 ]]; then
    echo "wrk is missing: sudo apt-get install wrk" >&2
    exit 1
  fi
  echo "==> installing wrk (Debian)" >&2
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
if [[ ! -f "$PEER/node_modules/.package-lock.json" || "$PEER/package-lock.json" -nt "$PEER/node_modules/.package-lock.json" ]]; then
  echo "==> installing the Node app's pinned packages (npm ci)" >&2
  (cd "$PEER" && npm ci --no-audit --no-fund --silent)
fi
echo "==> building session-api (release) and the table tool" >&2
cargo build --release --locked --quiet -p session-api
cargo build --locked --quiet -p dynamodb-session-store --example create_table
BINARY="$ROOT/target/release/session-api"

# ---- one local DynamoDB for both, counting calls ----
MOTO_PORT="$(free_port)"
"$VENV/bin/python" "$PEER/moto_counting.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
STARTED_PIDS+=($!)
wait_for_port "$MOTO_PORT"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
CALLS_URL="$AWS_ENDPOINT_URL_DYNAMODB/_peer_bench/calls"
echo "==> local DynamoDB (moto) at $AWS_ENDPOINT_URL_DYNAMODB; logs in $WORK" >&2
echo "==> load average now: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)" >&2

# The request sequence both apps replay (longer than any run; it wraps if not): in every 10
# requests 2 writes at random places, so any run is 80/20; sessions drawn at random; the
# same for every run (fixed seed).
python3 - "$SESSIONS" >"$WORK/mix.seq" <<'PY'
import random, sys
sessions = int(sys.argv[1])
rng = random.Random(20120810)
for _ in range(5_000):
    block = ["write"] * 2 + ["read"] * 8
    rng.shuffle(block)
    for kind in block:
        print(kind, rng.randint(1, sessions))
PY
echo "health 1" >"$WORK/health.seq"

# Sessions for one app: GET /counter without a cookie, keeping each Set-Cookie's name=value.
create_sessions() {
  local base="$1" cookies="$2"
  : >"$cookies"
  for _ in $(seq 1 "$SESSIONS"); do
    curl -fsS -D - -o /dev/null "$base/counter" | tr -d '\r' |
      sed -nE 's/^[Ss]et-[Cc]ookie: *([^;]+).*/\1/p' | head -n 1 >>"$cookies"
  done
  if [[ "$(grep -c . "$cookies")" -ne "$SESSIONS" ]]; then
    echo "could not create $SESSIONS sessions at $base" >&2
    exit 1
  fi
  # The session works: it reads back what /counter stored.
  local data
  data="$(curl -fsS -H "Cookie: $(head -n 1 "$cookies")" "$base/session")"
  if [[ "$data" != '{"count":1}' ]]; then
    echo "GET /session at $base answered $data, not {\"count\":1}" >&2
    exit 1
  fi
}

replay() { # seconds base sequence cookies -> the PEER_RESULT JSON
  wrk -t 1 -c "$CONNECTIONS" -d "$1s" --timeout 10s -s "$PEER/mix.lua" "$2" -- "$3" "$4" |
    sed -n 's/^PEER_RESULT //p'
}

# utime + stime of the processes, in clock ticks: the CPU the app's own processes spent.
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do
    total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# Everything measured for one app; results go to $WORK/<name>.*.
measure() {
  local name="$1" base="$2"
  shift 2
  local pids=("$@")
  echo "==> $name: $SESSIONS sessions, GET /health ${HEALTH}s, warm-up ${WARMUP}s, measured ${DURATION}s" >&2
  create_sessions "$base" "$WORK/$name.cookies"
  replay "$HEALTH" "$base" "$WORK/health.seq" "$WORK/$name.cookies" >"$WORK/$name.health.json"
  replay "$WARMUP" "$base" "$WORK/mix.seq" "$WORK/$name.cookies" >/dev/null
  # Let the request wrk left in flight finish before counting starts.
  sleep 0.5
  curl -fsS -X DELETE "$CALLS_URL" >/dev/null
  local before after
  before="$(cpu_ticks "${pids[@]}")"
  replay "$DURATION" "$base" "$WORK/mix.seq" "$WORK/$name.cookies" >"$WORK/$name.load.json"
  after="$(cpu_ticks "${pids[@]}")"
  echo "$((after - before)) $(getconf CLK_TCK)" >"$WORK/$name.cpu_ticks"
  curl -fsS "$CALLS_URL" >"$WORK/$name.calls.json"
  local pid peak=0 hwm
  for pid in "${pids[@]}"; do
    hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")"
    ((hwm > peak)) && peak="$hwm"
  done
  echo "$peak" >"$WORK/$name.rss_kib"
}

# ---- session-api behind the Lambda runtime emulator ----
export AWS_DYNAMO_DB_SESSION_TABLE_NAME=peer-session-api
export AWS_DYNAMO_DB_SESSION_SECRET_KEY=peer-benchmark-secret-0123456789abcdef
export AWS_DYNAMO_DB_SESSION_MAX_STALE=1800
export AWS_DYNAMO_DB_SESSION_COOKIE_SECURE=false
# The roots a deployed session-api trusts (no endpoint override there): here the endpoint
# override is moto's, over plain HTTP, so the choice changes only what the cold start loads.
export SESSION_TLS_ROOTS=amazon
"$ROOT/target/debug/examples/create_table" >"$WORK/create_table.log" 2>&1

EMULATOR_PORT="$(free_port)"
"$VENV/bin/cargo-lambda" lambda watch --only-lambda-apis -A 127.0.0.1 -P "$EMULATOR_PORT" \
  --concurrency "$CONNECTIONS" >"$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
STARTED_PIDS+=("$EMULATOR_PID")
wait_for_port "$EMULATOR_PORT"
SESSION_API="http://127.0.0.1:$EMULATOR_PORT/lambda-url/session-api"
# What Lambda gives the function's process; the runtime API is the emulator's.
LAMBDA_ENV=(AWS_LAMBDA_FUNCTION_NAME=session-api AWS_LAMBDA_FUNCTION_VERSION=1
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024
  "AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:$EMULATOR_PORT/.rt/session-api")

echo "==> session-api cold starts ($COLD_STARTS each to GET /health and to a first GET /counter)" >&2
for route in health counter; do
  env "${LAMBDA_ENV[@]}" python3 "$PEER/coldstart.py" "$COLD_STARTS" "$SESSION_API/$route" -- "$BINARY" \
    >"$WORK/cold-$route.json" 2>>"$WORK/session-api.log"
done

INSTANCE_PIDS=()
for _ in $(seq 1 "$CONNECTIONS"); do
  env "${LAMBDA_ENV[@]}" "$BINARY" >>"$WORK/session-api.log" 2>&1 &
  INSTANCE_PIDS+=($!)
  STARTED_PIDS+=($!)
done
measure session-api "$SESSION_API" "${INSTANCE_PIDS[@]}"
for pid in "${INSTANCE_PIDS[@]}" "$EMULATOR_PID"; do stop_pid "$pid"; done

# ---- express-session + connect-dynamodb ----
NODE_PORT="$(free_port)"
PORT="$NODE_PORT" SESSION_TABLE=peer-express-session \
  SESSION_SECRET=peer-benchmark-secret-0123456789abcdef \
  node "$PEER/server.js" >"$WORK/express-session.log" 2>&1 &
NODE_PID=$!
STARTED_PIDS+=("$NODE_PID")
wait_for_port "$NODE_PORT"
measure express-session "http://127.0.0.1:$NODE_PORT" "$NODE_PID"
stop_pid "$NODE_PID"

# ---- size of the function ----
strip -o "$WORK/session-api.stripped" "$BINARY"
stat -c %s "$WORK/session-api.stripped" >"$WORK/binary_bytes"
rm "$WORK/session-api.stripped"
if [[ -f "$ROOT/target/lambda/session-api/bootstrap" ]]; then
  stat -c %s "$ROOT/target/lambda/session-api/bootstrap" >"$WORK/bootstrap_bytes"
fi

python3 "$PEER/report.py" "$WORK" "$DURATION" "$CONNECTIONS"
