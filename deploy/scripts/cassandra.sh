#!/usr/bin/env bash
# Cassandra 5.0 from Maven Central jars: the single node of `make run`/`make test`, or one node of a cluster
# (deploy/cluster: FASTLANE_CASSANDRA_CONFIG names its template, FASTLANE_CASSANDRA_SEEDS and
# FASTLANE_CASSANDRA_INITIAL_TOKEN fill it, FASTLANE_LOCAL_DIR keeps each node's data apart).
#   cassandra.sh jars        copy the jars (cached; no-op when present)
#   cassandra.sh foreground  exec the node (for the supervisor in `make run`)
#   cassandra.sh start       start in the background unless 9042 already answers, wait until CQL answers
#   cassandra.sh stop        stop a node started by `start`
source "$(dirname "$0")/common.sh"
CJARS="$JARS/cassandra"
STORAGE="$DATA/cassandra"
CONF="$RUNDIR/cassandra.yaml"
PIDFILE="$RUNDIR/cassandra.pid"
HEAP="${FASTLANE_CASSANDRA_HEAP:-1g}"
JMX_PORT="${FASTLANE_CASSANDRA_JMX_PORT:-7199}"  # local JMX (loopback); a second node needs another
TEMPLATE="${FASTLANE_CASSANDRA_CONFIG:-$ROOT/deploy/cassandra/cassandra.yaml.in}"
SEEDS="${FASTLANE_CASSANDRA_SEEDS:-$BIND:7000}"
TOKEN="${FASTLANE_CASSANDRA_INITIAL_TOKEN:-0}"  # one token per node (num_tokens 1): a cluster spaces them evenly

jars() {
  [ -f "$CJARS/.complete" ] && return 0
  log "copying Cassandra jars from Maven Central into $CJARS"
  rm -rf "$CJARS"
  mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/jars/cassandra/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$CJARS" >/dev/null
  touch "$CJARS/.complete"
}

prepare() {
  jars
  mkdir -p "$STORAGE" "$LOGS/cassandra"
  sed -e "s#@STORAGE@#$STORAGE#" -e "s#@BIND@#$BIND#g" -e "s#@SEEDS@#$SEEDS#g" "$TEMPLATE" > "$CONF"
  JAVA_ARGS=(@"$ROOT/deploy/cassandra/jvm17.options" -Xms"$HEAP" -Xmx"$HEAP" -Xmn256m
    -javaagent:"$(ls "$CJARS"/jamm-*.jar | head -n 1)"
    -Dcassandra.config="file://$CONF"
    -Dlogback.configurationFile="$ROOT/deploy/cassandra/logback.xml"
    -Dcassandra.logdir="$LOGS/cassandra" -Dcassandra.storagedir="$STORAGE"
    -Dcassandra-foreground=yes -Dcassandra.jmx.local.port="$JMX_PORT"
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100
    -Dcassandra.shutdown_announce_in_ms=0 -Dcassandra.load_ring_state=false
    -Dcassandra.initial_token="$TOKEN"
    -cp "$CJARS/*" org.apache.cassandra.service.CassandraDaemon)
}


case "${1:-}" in
  jars) jars ;;
  foreground)
    if port_open 9042 "$BIND"; then
      log "cassandra already answers on $BIND:9042 (started by make test?); using it"
      exec sleep infinity
    fi
    prepare; coarse_timers; run_with_grace 2 java "${JAVA_ARGS[@]}" ;;
  start)
    if port_open 9042 "$BIND"; then log "Cassandra already answers on $BIND:9042"; exit 0; fi
    jars
    log "starting Cassandra (log: $LOGS/cassandra.log)"
    setsid nohup bash "$0" foreground >"$LOGS/cassandra.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    wait_for "Cassandra" 240 port_open 9042 "$BIND"
    log "Cassandra ready on $BIND:9042" ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; fi ;;
  *) die "usage: cassandra.sh jars|foreground|start|stop" ;;
esac
