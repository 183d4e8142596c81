#!/usr/bin/env bash
# Cassandra in a container: the repository's cassandra.yaml template listening on (and seeding from) the
# container's own address, the JVM options of deploy/scripts/cassandra.sh, storage in /var/lib/cassandra. Out of
# memory, the JVM exits (the container's restart policy starts it again) instead of limping on.
set -euo pipefail
HOME_DIR=/opt/cassandra
STORAGE=/var/lib/cassandra
CONF=/tmp/cassandra.yaml
ADDRESS="${CASSANDRA_LISTEN_ADDRESS:-$(hostname -i | cut -d' ' -f1)}"
echo "$ADDRESS" >/tmp/listen_address   # for the health check

sed -e "s#@STORAGE@#$STORAGE#" -e "s#@BIND@#$ADDRESS#g" "$HOME_DIR/config/cassandra.yaml.in" >"$CONF"
mkdir -p "$STORAGE/logs"
jamm=$(ls "$HOME_DIR"/libs/jamm-*.jar | head -n 1)
echo 1000000 >/proc/self/timerslack_ns 2>/dev/null || true   # why: deploy/scripts/common.sh, coarse_timers
exec java @"$HOME_DIR/config/jvm17.options" -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xmn"$CASSANDRA_NEW_HEAP" \
  -XX:+ExitOnOutOfMemoryError \
  -javaagent:"$jamm" \
  -Dcassandra.config="file://$CONF" \
  -Dlogback.configurationFile="$HOME_DIR/config/logback.xml" \
  -Dcassandra.logdir="$STORAGE/logs" -Dcassandra.storagedir="$STORAGE" \
  -Dcassandra-foreground=yes -Dcassandra.jmx.local.port=7199 \
  -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100 \
  -Dcassandra.shutdown_announce_in_ms=0 -Dcassandra.load_ring_state=false \
  -Dcassandra.initial_token=0 \
  -cp "$HOME_DIR/libs/*" org.apache.cassandra.service.CassandraDaemon
