# Sourced by the deploy scripts: paths and small helpers shared by all of them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${FASTLANE_LOCAL_DIR:-$ROOT/.local}"
JARS="$LOCAL/jars"
DATA="$LOCAL/data"
LOGS="$LOCAL/logs"
RUNDIR="$LOCAL/run"
mkdir -p "$JARS" "$DATA" "$LOGS" "$RUNDIR"

log() { printf '[provision] %s\n' "$*" >&2; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

# port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND... -> retries COMMAND once a second until it succeeds
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@"; then return 0; fi
    sleep 1
  done
  die "$what not ready after ${secs}s"
}

# run_with_grace SECONDS COMMAND... -> runs COMMAND in a session of its own; on SIGTERM/SIGINT waits SECONDS,
# then passes SIGTERM on and waits for it to exit. Used for Kafka and Cassandra under the supervisor (which
# signals every process at once): the services get time to commit offsets and close their sessions before
# the backing stores go away.
run_with_grace() {
  local grace=$1; shift
  setsid "$@" &
  local child=$!
  trap 'sleep "$grace"; kill -TERM "$child" 2>/dev/null' TERM INT
  wait "$child" || true   # returns early when a signal arrives; the trap then forwards it
  wait "$child"
}
