#!/usr/bin/env bash
# Kafka 4.x (KRaft) from Maven Central jars: the single-node broker of `make run`/`make test`, or one node of a
# cluster (deploy/cluster: FASTLANE_KAFKA_CONFIG names its template, FASTLANE_KAFKA_NODE_ID and
# FASTLANE_KAFKA_VOTERS fill it, FASTLANE_LOCAL_DIR keeps each node's data apart).
#   kafka.sh jars        copy the jars (cached; no-op when present)
#   kafka.sh foreground  prepare and exec the broker (for the supervisor in `make run`)
#   kafka.sh start       prepare, start in the background unless 9092 already answers, wait until ready
#   kafka.sh stop        stop a broker started by `start`
source "$(dirname "$0")/common.sh"
KJARS="$JARS/kafka"
KDATA="$DATA/kafka"
CONF="$RUNDIR/kafka-server.properties"
PIDFILE="$RUNDIR/kafka.pid"
CLUSTER_ID="${FASTLANE_KAFKA_CLUSTER_ID:-ZmFzdGxhbmUtbG9jYWwtMQ}"   # fixed: reproducible local runs
TEMPLATE="${FASTLANE_KAFKA_CONFIG:-$ROOT/deploy/kafka/server.properties.in}"
NODE_ID="${FASTLANE_KAFKA_NODE_ID:-1}"
VOTERS="${FASTLANE_KAFKA_VOTERS:-$NODE_ID@$BIND:9093}"
HEAP="${FASTLANE_KAFKA_HEAP:-512m}"

jars() {
  [ -f "$KJARS/.complete" ] && return 0
  log "copying Kafka jars from Maven Central into $KJARS"
  rm -rf "$KJARS"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/jars/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KJARS" >/dev/null
  touch "$KJARS/.complete"
}

JAVA_ARGS=(-Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" -cp "$KJARS/*")

prepare() {
  jars
  mkdir -p "$KDATA"
  sed -e "s#@DATA@#$KDATA#" -e "s#@BIND@#$BIND#g" -e "s#@NODE_ID@#$NODE_ID#g" -e "s#@VOTERS@#$VOTERS#g" \
    "$TEMPLATE" > "$CONF"
  if [ ! -f "$KDATA/meta.properties" ]; then
    log "formatting Kafka storage in $KDATA"
    java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$CONF" --ignore-formatted >/dev/null
  fi
}

ready() {
  FASTLANE_BIND_ADDR="$BIND" "$ROOT/.venv/bin/python" - <<'PY' 2>/dev/null
import os
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": os.environ["FASTLANE_BIND_ADDR"] + ":9092"}).list_topics(timeout=2)
PY
}

case "${1:-}" in
  jars) jars ;;
  foreground)
    if port_open 9092 "$BIND"; then
      log "kafka already answers on $BIND:9092 (started by make test?); using it"
      exec sleep infinity
    fi
    prepare; coarse_timers; run_with_grace 2 java "${JAVA_ARGS[@]}" kafka.Kafka "$CONF" ;;
  start)
    if port_open 9092 "$BIND"; then log "Kafka already answers on $BIND:9092"; exit 0; fi
    prepare
    log "starting Kafka (log: $LOGS/kafka.log)"
    setsid nohup bash "$0" foreground >"$LOGS/kafka.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    wait_for "Kafka" 120 ready
    log "Kafka ready on $BIND:9092" ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi ;;
  *) die "usage: kafka.sh jars|foreground|start|stop" ;;
esac
