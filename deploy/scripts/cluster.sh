#!/usr/bin/env bash
# The local cluster's backends (`make run-cluster`, tests/cluster): a 3-node KRaft Kafka and a 3-node Cassandra on
# this one machine, each node on its own loopback address with the usual ports, its data under
# $LOCAL/cluster/<node>, its config from deploy/cluster (filled by kafka.sh and cassandra.sh).
#   cluster.sh node kafka|cassandra N foreground|start|stop   one node (1-3), as kafka.sh/cassandra.sh would
#   cluster.sh start | stop                                   every node in the background / stop them
#   cluster.sh engine start|stop                              the cluster's second Docker engine (docker3)
#   cluster.sh addresses                                      the services' FASTLANE_* settings for this cluster
source "$(dirname "$0")/common.sh"
CLUSTER_DIR="$LOCAL/cluster"
KAFKA_ADDRS=(127.0.1.1 127.0.1.2 127.0.1.3)
CASSANDRA_ADDRS=(127.0.2.1 127.0.2.2 127.0.2.3)
# Murmur3 tokens spaced evenly: each node owns a third of the ring (and, at replication 3, holds all of it).
TOKENS=(-9223372036854775808 -3074457345618258603 3074457345618258602)

kafka_bootstrap() { local IFS=,; echo "${KAFKA_ADDRS[*]/%/:9092}"; }
cassandra_hosts() { local IFS=,; echo "${CASSANDRA_ADDRS[*]}"; }

node() {
  local kind=$1 n=$2 action=$3 i=$(($2 - 1))
  [[ "$n" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3"
  export FASTLANE_JARS_DIR="$JARS" FASTLANE_LOCAL_DIR="$CLUSTER_DIR/$kind-$n"
  case "$kind" in
    kafka)
      local voters="1@${KAFKA_ADDRS[0]}:9093,2@${KAFKA_ADDRS[1]}:9093,3@${KAFKA_ADDRS[2]}:9093"
      export FASTLANE_BIND_ADDR="${KAFKA_ADDRS[$i]}" FASTLANE_KAFKA_NODE_ID="$n" FASTLANE_KAFKA_VOTERS="$voters" \
        FASTLANE_KAFKA_CONFIG="$ROOT/deploy/cluster/kafka.properties.in" FASTLANE_KAFKA_CLUSTER_ID="ZmFzdGxhbmUtY2x1c3Rlcg"
      exec "$ROOT/deploy/scripts/kafka.sh" "$action" ;;
    cassandra)
      export FASTLANE_BIND_ADDR="${CASSANDRA_ADDRS[$i]}" FASTLANE_CASSANDRA_JMX_PORT="$((7200 + n))" \
        FASTLANE_CASSANDRA_SEEDS="${CASSANDRA_ADDRS[0]}:7000,${CASSANDRA_ADDRS[1]}:7000" \
        FASTLANE_CASSANDRA_INITIAL_TOKEN="${TOKENS[$i]}" FASTLANE_CASSANDRA_CONFIG="$ROOT/deploy/cluster/cassandra.yaml.in"
      if [ "$n" != 1 ] && [ "$action" = foreground ]; then
        # Nodes join one after the other, each once the one before answers CQL: two seeds starting together
        # can each form a cluster of its own (and make the same tables twice, with different ids), and a node
        # that finds no seed within ~30 s gives up ("Unable to gossip with any peers").
        wait_for "Cassandra node $((n - 1))" 900 port_open 9042 "${CASSANDRA_ADDRS[$((i - 1))]}"
      fi
      exec "$ROOT/deploy/scripts/cassandra.sh" "$action" ;;
    *) die "node kind must be kafka or cassandra" ;;
  esac
}

engine() {
  export FASTLANE_ENGINE_NAME=docker3 FASTLANE_ENGINE_BRIDGE=fl3br0 FASTLANE_ENGINE_SUBNET=172.30.98.1/24 \
    FASTLANE_ENGINE_TLS_PORT=23761
  exec "$ROOT/deploy/scripts/second-engine.sh" "$1" fastlane-test:latest
}

case "${1:-}" in
  engine) engine "${2:-start}" ;;
  node) node "${2:-}" "${3:-}" "${4:-}" ;;
  start)
    # Cassandra nodes one after the other (a node joining while another one does can stall its gossip); the
    # brokers meanwhile, in parallel (they need a majority of the controllers to answer).
    for n in 1 2 3; do bash "$0" node kafka "$n" start & done
    for n in 1 2 3; do bash "$0" node cassandra "$n" start; done
    wait ;;
  stop) for n in 1 2 3; do bash "$0" node kafka "$n" stop; bash "$0" node cassandra "$n" stop; done ;;
  addresses)
    echo "FASTLANE_KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
    echo "FASTLANE_CASSANDRA_HOSTS=$(cassandra_hosts)" ;;
  *) die "usage: cluster.sh node kafka|cassandra N foreground|start|stop | start | stop | engine start|stop | addresses" ;;
esac
