#!/usr/bin/env bash
# Benchmark of the session garbage collector on a local DynamoDB (moto, started here on a
# free 127.0.0.1 port and stopped on exit): sessions deleted per second and DynamoDB calls
# per 1,000 expired sessions, for each segment count. A benchmark, not a test: it reports
# figures and asserts none of them (beyond every session being deleted).
#
#   bench/gc.sh [SESSIONS] [SEGMENTS...]    # default: 5000 sessions, 1 and 4 segments
#
# Set AWS_ENDPOINT_URL_DYNAMODB to measure another DynamoDB (DynamoDB Local, or a real table
# in an account you pay for) instead.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
ensure_venv
# Build first, so the compile does not run while moto is up.
cargo build --release --locked -p session-gc --example gc_bench
start_local_dynamodb
cargo run --release --locked -p session-gc --example gc_bench -- "$@"
