#!/usr/bin/env bash
# What a request costs the function itself: CPU time per request of the function's process,
# release build, through the Lambda runtime emulator, for a bare lambda_http handler and the
# same handler behind SessionLayer (untouched, read-only with a cookie, change). A benchmark,
# not a test: it prints figures and asserts none of them.
#
#   bench/cpu.sh            # about 2 minutes after the first release build
#
# At 128 MB a Lambda function gets about a fourteenth of a vCPU, so a request's CPU time,
# multiplied by about 14, is most of its billed duration (plus the time it waits on
# DynamoDB).
#
# What it does, all on 127.0.0.1, stopping everything it started on exit:
# - builds shared/examples/lambda_cpu.rs (the function) and create_table in release (and the
#   same function at BASELINE, if set);
# - starts moto (scripts/moto_server.py) and creates the session table;
# - starts the runtime emulator (`cargo lambda watch --only-lambda-apis`) and two function
#   processes against it, the handler bare (CPU_BENCH_MODE=bare) and behind the layer
#   (CPU_BENCH_MODE=layer), with what Lambda gives a 128 MB function's process;
# - bench/cpu/drive.py sends, per request kind and round, WARMUP requests and then REQUESTS
#   measured ones, one at a time, reading the function process's CPU time (schedstat of its
#   threads; utime + stime as a cross-check) before and after; prints the medians.
#
# BASELINE=<commit> also measures the layer of that commit, side by side in the same rounds
# (before/after): its tree is checked out in a worktree under the target directory (removed
# again after the build), this function's source copied in, and built into the same target
# directory.
#
# Knobs (environment): REQUESTS=1000 WARMUP=100 ROUNDS=5; OUT=<file> keeps the JSON figures.
# Set AWS_ENDPOINT_URL_DYNAMODB to use another DynamoDB instead of moto.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
ensure_venv
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cpu-bench.XXXXXX")"
OUT="${OUT:-$WORK/cpu.json}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

STARTED_PIDS=()
stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
  stop_local_dynamodb
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
echo "==> building the function (release)" >&2
cargo build --release --locked --message-format=json-render-diagnostics \
  -p dynamodb-session-store --example lambda_cpu --example create_table >"$WORK/build.json"
executable_of lambda_cpu <"$WORK/build.json" | xargs -I{} cp {} "$WORK/lambda_cpu"
executable_of create_table <"$WORK/build.json" | xargs -I{} cp {} "$WORK/create_table"
for binary in lambda_cpu create_table; do
  [[ -x "$WORK/$binary" ]] || { echo "no $binary binary from the build" >&2; exit 1; }
done
if [[ -n "${BASELINE:-}" && ! -x "$WORK/lambda_cpu-baseline" ]]; then
  echo "no lambda_cpu binary from the build at $BASELINE" >&2
  exit 1
fi

start_local_dynamodb
trap stop_started EXIT
export AWS_DYNAMO_DB_SESSION_TABLE_NAME=cpu-bench
export AWS_DYNAMO_DB_SESSION_SECRET_KEY=cpu-benchmark-secret-0123456789abcdef
"$WORK/create_table" >"$WORK/create_table.log" 2>&1

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
EMULATOR_PORT="$(free_port)"
(cd "$WORK/emulator" && exec "$VENV/bin/cargo-lambda" lambda watch --only-lambda-apis \
  -A 127.0.0.1 -P "$EMULATOR_PORT") >"$WORK/emulator.log" 2>&1 &
STARTED_PIDS+=($!)
wait_for_port "$EMULATOR_PORT"

start_function() { # name mode binary; its pid goes to STARTED_PIDS
  env AWS_LAMBDA_FUNCTION_NAME="$1" AWS_LAMBDA_FUNCTION_VERSION=1 \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$EMULATOR_PORT/.rt/$1" \
    CPU_BENCH_MODE="$2" "$3" >>"$WORK/$1.log" 2>&1 &
  STARTED_PIDS+=($!)
}
start_function cpu-bare bare "$WORK/lambda_cpu"
PIDS=("${STARTED_PIDS[-1]}")
start_function cpu-layer layer "$WORK/lambda_cpu"
PIDS+=("${STARTED_PIDS[-1]}")
if [[ -n "${BASELINE:-}" ]]; then
  start_function cpu-baseline-layer layer "$WORK/lambda_cpu-baseline"
  PIDS+=("${STARTED_PIDS[-1]}")
fi

echo "==> load average now: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)" >&2
python3 "$ROOT/bench/cpu/drive.py" "$OUT" "http://127.0.0.1:$EMULATOR_PORT/lambda-url" "${PIDS[@]}"
echo "==> figures in $OUT; logs in $WORK" >&2
