# Shared by the scripts in this directory. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/scripts/requirements.txt"

DEPLOY_REQUIREMENTS="$ROOT/scripts/requirements-deploy.txt"

# Installs a pinned requirements file into the project's venv unless the venv already holds
# exactly it (a stamp per file records the file's hash).
install_requirements() {
  local file="$1" stamp="$VENV/.$(basename "$1").sha256" want
  want="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "==> installing the pinned tools of scripts/$(basename "$file") into .venv" >&2
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$file"
  echo "$want" > "$stamp"
}

# What running and testing need: moto (the local DynamoDB) and cargo-lambda.
ensure_venv() {
  install_requirements "$REQUIREMENTS"
}

# What building and validating the SAM templates need on top: the SAM CLI and cfn-lint.
ensure_deploy_tools() {
  ensure_venv
  install_requirements "$DEPLOY_REQUIREMENTS"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto on 127.0.0.1 (port $1, or a free one) unless AWS_ENDPOINT_URL_DYNAMODB is
# already set; exports the endpoint and test credentials. Stops it on exit.
start_local_dynamodb() {
  if [[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
    echo "==> using DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB" >&2
    return
  fi
  local port="${1:-$(free_port)}"
  local log="${TMPDIR:-/tmp}/moto-$port.log"
  "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  trap 'stop_local_dynamodb' EXIT
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
      export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
      export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
      export AWS_REGION="${AWS_REGION:-us-east-1}"
      echo "==> local DynamoDB (moto, pid $MOTO_PID) at $AWS_ENDPOINT_URL_DYNAMODB" >&2
      return
    fi
    sleep 0.1
  done
  echo "moto did not start; its log ($log):" >&2
  cat "$log" >&2
  exit 1
}

stop_local_dynamodb() {
  if [[ -n "${MOTO_PID:-}" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=
  fi
}
