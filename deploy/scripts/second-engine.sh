#!/usr/bin/env bash
# A second Docker engine on this machine (own socket, data-root, exec-root and bridge), standing in for a
# second Docker host in the farm tests. Loads the test image into it. (Not `--bridge none`: that makes dockerd
# delete the docker0 bridge the first engine uses.) Besides its socket it listens on tcp://127.0.0.1:$TLS_PORT
# with TLS and client certificates required, as a remote engine is reached; the certificates (a throwaway CA,
# the engine's, a client's) are made with openssl in $RUNDIR/docker2-tls.
#   second-engine.sh start|stop   (prints nothing on success; the socket is $RUNDIR/docker2.sock)
# FASTLANE_ENGINE_NAME (docker2), _BRIDGE (fl2br0), _SUBNET (172.30.99.1/24) and _TLS_PORT (23760) make another
# one beside it: the local cluster's (deploy/scripts/cluster.sh) is docker3, so that the fault suite and the farm
# tests, which stop docker2 when they end, never take it away.
source "$(dirname "$0")/common.sh"
ENGINE="${FASTLANE_ENGINE_NAME:-docker2}"
BRIDGE="${FASTLANE_ENGINE_BRIDGE:-fl2br0}"
SUBNET="${FASTLANE_ENGINE_SUBNET:-172.30.99.1/24}"
SOCK="$RUNDIR/$ENGINE.sock"
PIDFILE="$RUNDIR/$ENGINE.pid"
EXECROOT="$RUNDIR/$ENGINE-exec"  # per checkout: two clones' engines must not share containerd's state
D2=(docker -H "unix://$SOCK")
TLS="$RUNDIR/$ENGINE-tls"
TLS_PORT="${FASTLANE_ENGINE_TLS_PORT:-23760}"
up() { "${D2[@]}" info >/dev/null 2>&1; }

# certificates CN [EXTENSIONS]: a key and a certificate signed by the throwaway CA
certificate() {
  local name=$1 cn=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$TLS/$name-key.pem" -out "$TLS/$name.csr" 2>/dev/null
  openssl x509 -req -in "$TLS/$name.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" -CAcreateserial -days 30 \
    -extfile <(printf '%s\n' "$ext") -out "$TLS/$name.pem" 2>/dev/null
}

certificates() {
  [ -f "$TLS/client.pem" ] && openssl x509 -checkend 86400 -noout -in "$TLS/client.pem" >/dev/null && return
  command -v openssl >/dev/null || die "openssl is needed for the second engine's TLS certificates"
  rm -rf "$TLS"; mkdir -p "$TLS"
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 30 -subj "/CN=fastlane test CA" \
    -keyout "$TLS/ca-key.pem" -out "$TLS/ca.pem" 2>/dev/null
  certificate server 127.0.0.1 "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
  certificate client fastlane-runner "extendedKeyUsage=clientAuth"
}

case "${1:-start}" in
  start)
    if ! up; then
      [ "$(id -u)" = 0 ] || die "a second dockerd needs root"
      mkdir -p "$DATA/$ENGINE" "$EXECROOT"
      rm -f "$SOCK" "$PIDFILE"
      if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$SUBNET" dev "$BRIDGE"
        ip link set "$BRIDGE" up
      fi
      certificates
      setsid nohup dockerd -H "unix://$SOCK" -H "tcp://127.0.0.1:$TLS_PORT" \
        --tlsverify --tlscacert "$TLS/ca.pem" --tlscert "$TLS/server.pem" --tlskey "$TLS/server-key.pem" \
        --data-root "$DATA/$ENGINE" --exec-root "$EXECROOT" \
        --pidfile "$PIDFILE" --bridge "$BRIDGE" --iptables=false --ip6tables=false \
        >"$LOGS/dockerd-$ENGINE.log" 2>&1 </dev/null &
      wait_for "second dockerd" 60 up
    fi
    image="${2:-fastlane-test:latest}"
    if ! "${D2[@]}" image inspect "$image" >/dev/null 2>&1; then
      docker save "$image" | "${D2[@]}" load -q >/dev/null
    fi
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
      for _ in $(seq 30); do up || break; sleep 1; done
    fi
    ;;
  *) die "usage: $0 start|stop" ;;
esac
