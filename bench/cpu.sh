#!/usr/bin/env bash
# What a request costs the function itself: CPU time per request of the function's process,
# release build, through the Lambda runtime emulator, for a bare lambda_http handler and the
# same handler behind SessionLayer (untouched, read-only with a cookie, change). A benchmark,
# not a test: it prints figures and asserts none of them.
#
#   bench/cpu.sh            # about 5 minutes after the first release build
#
# At 128 MB a Lambda function gets about a fourteenth of a vCPU, so a request's CPU time,
# multiplied by about 14, is most of its billed duration (plus the time it waits on
# DynamoDB).
#
# What it does, all on 127.0.0.1, stopping everything it started on exit:
# - builds shared/examples/lambda_cpu.rs (the function) and create_table in release (and the
#   same function at BASELINE, if set);
# - measures against two local DynamoDBs in turn, each with its own table, runtime emulator
#   (`cargo lambda watch --only-lambda-apis`) and function processes, the handler bare
#   (CPU_BENCH_MODE=bare) and behind the layer (CPU_BENCH_MODE=layer), with what Lambda gives
#   a 128 MB function's process:
#   - keep-alive: dynalite (pinned in bench/peer/package.json), which keeps the SDK's
#     connection open as DynamoDB does;
#   - connection-per-call: moto (scripts/moto_server.py), which closes it after every answer,
#     so every call also pays a TCP connect;
# - bench/cpu/drive.py sends, per request kind and round, WARMUP requests and then REQUESTS
#   measured ones, one at a time, reading the function process's CPU time (schedstat of its
#   threads; utime + stime as a cross-check) before and after; prints the medians per
#   endpoint; bench/cpu/compare.py puts the endpoints side by side: the CPU one DynamoDB
#   call costs, and the layer's own code.
#
# BASELINE=<commit> also measures the layer of that commit, side by side in the same rounds
# (before/after): its tree is checked out in a worktree under the target directory (removed
# again after the build), this function's source copied in, and built into the same target
# directory.
#
# VARIANT="NAME=value ..." runs a third process, the layer with those settings, in the
# baseline's column: CPU_BENCH_RUNTIME=multi_thread or multi_thread:N (the tokio runtime;
# default current_thread, as session-api's), CPU_BENCH_SDK=no-stall-protection
# (see shared/examples/lambda_cpu.rs). Set either for all three processes to compare the
# bare handler's calls too.
#
# PROFILE=callgrind counts instructions instead (valgrind's callgrind, keep-alive endpoint
# only, bench/cpu/callgrind.py): exact per request whatever the machine's load, with dumps
# for callgrind_annotate. REQUESTS=200 WARMUP=20 are plenty there.
#
# Knobs (environment): REQUESTS=1000 WARMUP=100 ROUNDS=5; OUT=<file> keeps the JSON figures;
# KEEP_ALIVE_ONLY=1 skips moto; NO_BUILD=1 takes the last build's binaries as they are.
# Set AWS_ENDPOINT_URL_DYNAMODB to measure against that DynamoDB only.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
ensure_venv
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cpu-bench.XXXXXX")"
OUT="${OUT:-$WORK/cpu.json}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PEER="$ROOT/bench/peer"

STARTED_PIDS=()
stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
  stop_local_dynamodb
  if [[ -n "${DYNALITE_PID:-}" ]]; then
    kill "$DYNALITE_PID" 2>/dev/null || true
    wait "$DYNALITE_PID" 2>/dev/null || true
    DYNALITE_PID=
  fi
  if [[ -n "${BASE_TREE:-}" ]]; then
    git -C "$ROOT" worktree remove --force "$BASE_TREE" 2>/dev/null || true
    BASE_TREE=
  fi
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

# The executable cargo built for example $1, from cargo's JSON messages on stdin.
executable_of() {
  python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == sys.argv[1]:
        print(message["executable"])' "$1"
}

# Build first, so the compile does not run while anything is measured.
if [[ -n "${BASELINE:-}" ]]; then
  echo "==> building the function at $BASELINE (release, worktree $TARGET/cpu-bench-baseline)" >&2
  # A fixed place, so a second run rebuilds nothing; it is removed on exit.
  BASE_TREE="$TARGET/cpu-bench-baseline"
  git -C "$ROOT" worktree remove --force "$BASE_TREE" 2>/dev/null || rm -rf "$BASE_TREE"
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach --quiet "$BASE_TREE" "$BASELINE"
  cp "$ROOT/shared/examples/lambda_cpu.rs" "$BASE_TREE/shared/examples/"
  (cd "$BASE_TREE" && CARGO_TARGET_DIR="$TARGET" cargo build --release --locked \
    --message-format=json-render-diagnostics -p dynamodb-session-store --example lambda_cpu) |
    executable_of lambda_cpu | xargs -I{} cp {} "$WORK/lambda_cpu-baseline"
  git -C "$ROOT" worktree remove --force "$BASE_TREE"
  BASE_TREE=
fi
if [[ -n "${NO_BUILD:-}" ]]; then
  # The last build's binaries, as they are (say, while another build holds the target).
  cp "$TARGET/release/examples/lambda_cpu" "$TARGET/release/examples/create_table" "$WORK/"
else
  echo "==> building the function (release)" >&2
  cargo build --release --locked --message-format=json-render-diagnostics \
    -p dynamodb-session-store --example lambda_cpu --example create_table >"$WORK/build.json"
  executable_of lambda_cpu <"$WORK/build.json" | xargs -I{} cp {} "$WORK/lambda_cpu"
  if [[ "${PROFILE:-}" == callgrind ]]; then
    # The profile needs the symbols the release profile strips: relink only the function
    # (a later rustc -C option overrides the profile's).
    cargo rustc --release --locked --message-format=json-render-diagnostics \
      -p dynamodb-session-store --example lambda_cpu -- -C strip=none >"$WORK/build-symbols.json"
    executable_of lambda_cpu <"$WORK/build-symbols.json" | xargs -I{} cp {} "$WORK/lambda_cpu"
  fi
  executable_of create_table <"$WORK/build.json" | xargs -I{} cp {} "$WORK/create_table"
fi
for binary in lambda_cpu create_table; do
  [[ -x "$WORK/$binary" ]] || { echo "no $binary binary from the build" >&2; exit 1; }
done
if [[ -n "${BASELINE:-}" && ! -x "$WORK/lambda_cpu-baseline" ]]; then
  echo "no lambda_cpu binary from the build at $BASELINE" >&2
  exit 1
fi

# The runtime session-api runs (functions/session-api/src/main.rs), unless told otherwise.
export CPU_BENCH_RUNTIME="${CPU_BENCH_RUNTIME:-current_thread}"
export AWS_DYNAMO_DB_SESSION_TABLE_NAME=cpu-bench
export AWS_DYNAMO_DB_SESSION_SECRET_KEY=cpu-benchmark-secret-0123456789abcdef

# The emulator serves only functions its project's manifest names as binaries: a stub
# project names them (it is never built; the functions are lambda_cpu binaries).
mkdir "$WORK/emulator"
cat >"$WORK/emulator/Cargo.toml" <<'TOML'
[package]
name = "cpu-bench-functions"
version = "0.0.0"
edition = "2021"
publish = false

[[bin]]
name = "cpu-bare"
path = "main.rs"

[[bin]]
name = "cpu-layer"
path = "main.rs"

[[bin]]
name = "cpu-baseline-layer"
path = "main.rs"
TOML
echo 'fn main() {}' >"$WORK/emulator/main.rs"

start_function() { # name mode binary [env...]; its pid goes to STARTED_PIDS
  local name="$1" mode="$2" binary="$3" wrapper=()
  shift 3
  if [[ "${PROFILE:-}" == callgrind ]]; then
    mkdir -p "$WORK/callgrind"
    # exec, so that the pid started here is valgrind's, which callgrind_control addresses.
    wrapper=(valgrind --tool=callgrind "--callgrind-out-file=$WORK/callgrind/callgrind.out.%p")
  fi
  env AWS_LAMBDA_FUNCTION_NAME="$name" AWS_LAMBDA_FUNCTION_VERSION=1 \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$EMULATOR_PORT/.rt/$name" \
    CPU_BENCH_MODE="$mode" "$@" "${wrapper[@]}" "$binary" >>"$WORK/$name.log" 2>&1 &
  STARTED_PIDS+=($!)
}

# One DynamoDB endpoint: a fresh emulator and fresh function processes against it, the
# table created, drive.py's rounds; figures in $WORK/<label>.json. Everything it started is
# stopped before it returns.
measure_against() { # label [table creator...]; the creator is create_table by default
  local label="$1"
  shift
  "${@:-$WORK/create_table}" >"$WORK/create_table-$label.log" 2>&1 || {
    echo "could not create the table at $AWS_ENDPOINT_URL_DYNAMODB:" >&2
    cat "$WORK/create_table-$label.log" >&2
    exit 1
  }
  EMULATOR_PORT="$(free_port)"
  (cd "$WORK/emulator" && exec "$VENV/bin/cargo-lambda" lambda watch --only-lambda-apis \
    -A 127.0.0.1 -P "$EMULATOR_PORT") >"$WORK/emulator-$label.log" 2>&1 &
  STARTED_PIDS+=($!)
  wait_for_port "$EMULATOR_PORT"
  start_function cpu-bare bare "$WORK/lambda_cpu"
  PIDS=("${STARTED_PIDS[-1]}")
  start_function cpu-layer layer "$WORK/lambda_cpu"
  PIDS+=("${STARTED_PIDS[-1]}")
  if [[ -n "${BASELINE:-}" ]]; then
    start_function cpu-baseline-layer layer "$WORK/lambda_cpu-baseline"
    PIDS+=("${STARTED_PIDS[-1]}")
  elif [[ -n "${VARIANT:-}" ]]; then
    # The same layer with other settings, in the baseline's column.
    # shellcheck disable=SC2086 # VARIANT is a list of NAME=value words
    start_function cpu-baseline-layer layer "$WORK/lambda_cpu" $VARIANT
    PIDS+=("${STARTED_PIDS[-1]}")
  fi
  echo "==> $label: load average now: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)" >&2
  if [[ "${PROFILE:-}" == callgrind ]]; then
    python3 "$ROOT/bench/cpu/callgrind.py" "$WORK/callgrind" \
      "http://127.0.0.1:$EMULATOR_PORT/lambda-url" "${PIDS[@]:0:2}"
  else
    python3 "$ROOT/bench/cpu/drive.py" "$WORK/$label.json" "http://127.0.0.1:$EMULATOR_PORT/lambda-url" "${PIDS[@]}"
  fi
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
}

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
if [[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
  echo "==> using DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB" >&2
  measure_against given
  LABELS=(given)
else
  # dynalite answers with Connection: keep-alive, as DynamoDB does: the SDK keeps its
  # connection and each call costs what it costs against the real service (less TLS).
  # moto closes the connection after every answer, so each call also pays a TCP connect.
  if [[ ! -f "$PEER/node_modules/.package-lock.json" || "$PEER/package-lock.json" -nt "$PEER/node_modules/.package-lock.json" ]]; then
    echo "==> installing the pinned Node packages, dynalite among them (npm ci)" >&2
    (cd "$PEER" && npm ci --no-audit --no-fund --silent)
  fi
  DYNALITE_PORT="$(free_port)"
  node "$PEER/node_modules/dynalite/cli.js" --host 127.0.0.1 --port "$DYNALITE_PORT" \
    >"$WORK/dynalite.log" 2>&1 &
  DYNALITE_PID=$!
  wait_for_port "$DYNALITE_PORT"
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DYNALITE_PORT"
  echo "==> keep-alive: dynalite (pid $DYNALITE_PID) at $AWS_ENDPOINT_URL_DYNAMODB" >&2
  # dynalite has no TTL API, which create_table turns on: the same table without it.
  measure_against keep-alive "$VENV/bin/python" -c '
import os, boto3
ddb = boto3.client("dynamodb", region_name=os.environ["AWS_REGION"])
name, key = os.environ["AWS_DYNAMO_DB_SESSION_TABLE_NAME"], os.environ.get("AWS_DYNAMO_DB_SESSION_TABLE_KEY", "session_id")
ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
ddb.get_waiter("table_exists").wait(TableName=name)'
  kill "$DYNALITE_PID" 2>/dev/null || true
  wait "$DYNALITE_PID" 2>/dev/null || true
  DYNALITE_PID=
  unset AWS_ENDPOINT_URL_DYNAMODB
  if [[ "${PROFILE:-}" == callgrind ]]; then
    echo "==> callgrind dumps in $WORK/callgrind (callgrind_annotate --inclusive=yes <dump>)" >&2
    exit 0
  fi

  LABELS=(keep-alive)
  if [[ -z "${KEEP_ALIVE_ONLY:-}" ]]; then
    start_local_dynamodb
    trap stop_started EXIT
    echo "==> connection per call: moto at $AWS_ENDPOINT_URL_DYNAMODB" >&2
    measure_against connection-per-call
    stop_local_dynamodb
    LABELS+=(connection-per-call)
  fi
fi

python3 "$ROOT/bench/cpu/compare.py" "$OUT" "${LABELS[@]/#/$WORK/}"
echo "==> figures in $OUT; logs in $WORK" >&2
