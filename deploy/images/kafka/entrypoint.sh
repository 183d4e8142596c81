#!/usr/bin/env bash
# Kafka in a container: the repository's server.properties template with a container's addresses (clients on
# every interface, the controller on loopback, advertised under KAFKA_ADVERTISED_HOST); storage formatted on
# the first start (a fixed cluster id, as deploy/scripts/kafka.sh).
set -euo pipefail
HOME_DIR=/opt/kafka
DATA=/var/lib/kafka/data
CONF=/tmp/server.properties
CLUSTER_ID="ZmFzdGxhbmUtbG9jYWwtMQ"
ADVERTISED="${KAFKA_ADVERTISED_HOST:-$(hostname)}"

sed -e "s#@DATA@#$DATA#" -e "s#@BIND@#127.0.0.1#g" "$HOME_DIR/config/server.properties.in" \
  | grep -vE '^(listeners|advertised\.listeners)=' >"$CONF"
cat >>"$CONF" <<PROPS
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$ADVERTISED:9092
PROPS

JAVA_ARGS=(-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$HOME_DIR/config/log4j2.properties" -cp "$HOME_DIR/libs/*")
if [ ! -f "$DATA/meta.properties" ]; then
  echo "formatting Kafka storage in $DATA" >&2
  java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$CONF" --ignore-formatted >/dev/null
fi
# A timer slack of 1 ms, as deploy/scripts/common.sh explains (allowed for one's own process; else the default).
echo 1000000 >/proc/self/timerslack_ns 2>/dev/null || true
# Out of memory, the JVM exits (the container's restart policy starts it again) instead of limping on.
exec java "${JAVA_ARGS[@]}" -XX:+ExitOnOutOfMemoryError kafka.Kafka "$CONF"
