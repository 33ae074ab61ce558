#!/usr/bin/env bash
# The e2e conversation without a cluster: two `agentfleet dev` replicas on one Redis (the
# redis state backend), a conversation with the first over HTTP and WebSocket
# (e2e/converse.py), the first killed with SIGKILL, then the same session must be whole on
# the second replica and go on there. Steps 6-8 of e2e/run.sh with processes in place of
# pods: CI's test job runs it against its Redis service, tests/delivery against a
# redis-server of its own.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 e2e/local-failover.sh
#
# Knobs: REDIS_URL (required), PORT (18090), SECOND_PORT (the second replica's; PORT+1),
# AGENTFLEET
# (the command; default: scripts/uv run agentfleet), PYTHON (default: scripts/uv run
# python), STARTUP_TIMEOUT seconds (60).
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

: "${REDIS_URL:?set REDIS_URL, e.g. redis://127.0.0.1:6379/0}"
PORT=${PORT:-18090}
SECOND_PORT=${SECOND_PORT:-$((PORT + 1))}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60}
read -r -a agentfleet <<<"${AGENTFLEET:-scripts/uv run --frozen agentfleet}"
read -r -a python <<<"${PYTHON:-scripts/uv run --frozen python}"
workdir=$(mktemp -d)
declare -A pids=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'local-failover: FAILED: %s\n' "$*" >&2; exit 1; }

stop_replica() {
  local name=$1 signal=$2
  if [[ -n "${pids[$name]:-}" ]]; then
    kill "-$signal" "${pids[$name]}" 2>/dev/null || true
    wait "${pids[$name]}" 2>/dev/null || true
    unset "pids[$name]"
  fi
}

cleanup() {
  local status=$? name file
  for name in "${!pids[@]}"; do
    stop_replica "$name" TERM
  done
  if ((status != 0)); then
    for file in "$workdir"/replica-*.log; do
      [[ -e "$file" ]] || continue
      echo "--- $(basename "$file") (last lines)" >&2
      tail -n 40 "$file" >&2
    done
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT

start_replica() {
  local name=$1 port=$2
  AGENTFLEET_STATE__BACKEND=redis AGENTFLEET_STATE__REDIS_URL="$REDIS_URL" \
    AGENTFLEET_REPLICA_ID="$name" \
    "${agentfleet[@]}" dev --port "$port" --log-format json >"$workdir/replica-$name.log" 2>&1 &
  pids[$name]=$!
}

wait_ready() {
  local name=$1 port=$2 waited=0
  until curl -fsS "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1; do
    kill -0 "${pids[$name]}" 2>/dev/null || die "replica $name exited during start-up"
    ((waited++ < STARTUP_TIMEOUT * 4)) || die "replica $name was not ready in ${STARTUP_TIMEOUT}s"
    sleep 0.25
  done
  log "replica $name ready on port $port (pid ${pids[$name]})"
}

log "two replicas on the redis backend ($REDIS_URL)"
start_replica first "$PORT"
start_replica second "$SECOND_PORT"
wait_ready first "$PORT"
wait_ready second "$SECOND_PORT"

first="http://127.0.0.1:$PORT"
"${python[@]}" e2e/converse.py start --url "$first" --agent demo >"$workdir/session"
session=$(<"$workdir/session")
[[ -n "$session" ]] || die "no session id"
"${python[@]}" e2e/converse.py websocket --url "$first" --session "$session"

log "kill the first replica (SIGKILL); the session goes on on the second"
stop_replica first KILL
"${python[@]}" e2e/converse.py survived --url "http://127.0.0.1:$SECOND_PORT" \
  --session "$session" --min-messages 4
log "the conversation survived"
