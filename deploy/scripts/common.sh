# Sourced by the deploy scripts: paths and small helpers shared by all of them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${FASTLANE_LOCAL_DIR:-$ROOT/.local}"
# The jars can live elsewhere (a second stack, e.g. the fault suite's, reuses the main checkout's).
JARS="${FASTLANE_JARS_DIR:-$LOCAL/jars}"
DATA="$LOCAL/data"
LOGS="$LOCAL/logs"
RUNDIR="$LOCAL/run"
mkdir -p "$JARS" "$DATA" "$LOGS" "$RUNDIR"
# The loopback address Kafka and Cassandra listen on (every 127.x.y.z reaches lo on Linux): a second node set
# on 127.0.0.2/.3 runs beside the default one on the same ports (the fault suite's backends do).
BIND="${FASTLANE_BIND_ADDR:-127.0.0.1}"

log() { printf '[provision] %s\n' "$*" >&2; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

# port_open PORT [ADDRESS] -> 0 when something accepts TCP connections on ADDRESS:PORT (default 127.0.0.1)
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_for DESCRIPTION SECONDS COMMAND... -> retries COMMAND once a second until it succeeds
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do
    if "$@"; then return 0; fi
    sleep 1
  done
  die "$what not ready after ${secs}s"
}

# coarse_timers -> this shell and what it starts from now on wake from timed sleeps up to 1 ms late (Linux
# timer slack, inherited by children and their threads; the default is 50 us). Cassandra's request workers
# spin on sleeps of 10 us while requests keep arriving, and on this small machine that spinning cost ~4 ms of
# CPU per request at a few hundred requests a second (0.7 ms when they come back to back), taken from the
# Docker engine the runners use; with 1 ms of slack it costs ~1 ms. Measured: bench/README figures.
coarse_timers() {
  echo 1000000 > /proc/self/timerslack_ns 2>/dev/null || log "could not set the timer slack; leaving the default"
}

# run_with_grace SECONDS COMMAND... -> runs COMMAND in the background; on SIGTERM/SIGINT to this shell waits
# SECONDS, then passes SIGTERM on and waits for it to exit. `kafka.sh stop`/`cassandra.sh stop` signal only
# this shell: the grace lets services still running against a `make test` backend commit offsets and close
# their sessions first. COMMAND stays in this shell's process group (no setsid): supervisord (`make run`)
# stops the services first, then signals the whole group (stopasgroup/killasgroup), so the JVM gets TERM at
# once and, should it hang past stopwaitsecs, the SIGKILL too; nothing is left running without its wrapper.
run_with_grace() {
  local grace=$1; shift
  "$@" &
  local child=$!
  trap 'sleep "$grace"; kill -TERM "$child" 2>/dev/null' TERM INT
  wait "$child" || true   # returns early when a signal arrives; the trap then forwards it
  wait "$child"
}
